"""PyTorch side of bench/run_transformer.py: trains the transformer of
examples/char_transformer.toml (token and position embeddings, pre-LayerNorm causal attention
blocks with a GELU MLP, final LayerNorm, linear head) on the same text, the same windows (seq_len
+ 1 tokens every seq_len bytes of the first 90% of the file, reshuffled each epoch), batch,
AdamW with linear warm-up then cosine decay, and prints one JSON object: tokens/s over the
training steps and the test loss (nats per character over the last 10% of the file).

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_transformer.py --torch-threads 1
"""
import argparse
import json
import math
import time

import torch

TEXT = "/usr/share/games/fortunes/computers"


class Block(torch.nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.fc, self.out = torch.nn.Linear(dim, hidden), torch.nn.Linear(hidden, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        y = (scores.masked_fill(mask, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


class Gpt(torch.nn.Module):
    def __init__(self, vocab, dim, heads, blocks, positions):
        super().__init__()
        self.tokens, self.positions = torch.nn.Embedding(vocab, dim), torch.nn.Embedding(positions, dim)
        self.blocks = torch.nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(blocks)])
        self.ln, self.head = torch.nn.LayerNorm(dim), torch.nn.Linear(dim, vocab)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def windows(tokens, seq_len):
    n = (len(tokens) - 1) // seq_len
    return torch.stack([tokens[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--vocab", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(a.torch_threads)
    torch.manual_seed(1)
    text = open(TEXT, "rb").read()
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    tokens = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(tokens))
    train, test = windows(tokens[:split], a.seq_len), windows(tokens[split:], a.seq_len)
    model = Gpt(a.vocab, a.dim, a.heads, a.blocks, a.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train) / a.batch)
    total = steps_per_epoch * a.epochs if not a.max_steps else a.max_steps
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else
                                              0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    steps, trained, start = 0, 0.0, None
    for _ in range(a.epochs):
        order = torch.randperm(len(train))
        for first in range(0, len(train), a.batch):
            batch = train[order[first:first + a.batch]]
            t0 = time.perf_counter()
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            trained += time.perf_counter() - t0
            steps += 1
            if steps == total:
                break
        if steps == total:
            break
    model.eval()
    with torch.no_grad():
        logits = model(test[:, :-1])
        test_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), test[:, 1:].reshape(-1)).item()
    print(json.dumps({"tokens_per_s": steps * a.batch * a.seq_len / trained, "steps": steps,
                      "test_loss": test_loss}))


if __name__ == "__main__":
    main()
