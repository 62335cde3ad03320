"""PyTorch side of bench/run_train.py: trains the same MLP or CNN as examples/fashion_mnist_*.toml
on Fashion-MNIST (read from Debian's dataset-fashion-mnist files), same batch, optimizer and
schedule, and prints one JSON object: per-epoch test accuracy and wall time, and training
throughput (samples/s over the training steps only).

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_train.py --model mlp --epochs 10
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch

ROOT = "/usr/share/datasets/fashion-mnist"


def load(prefix):
    with gzip.open(os.path.join(ROOT, prefix + "-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(ROOT, prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512), torch.nn.ReLU(),
                               torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
        torch.nn.Linear(256, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["mlp", "cnn"], required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(1)
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    model = mlp() if args.model == "mlp" else cnn()
    if args.model == "mlp":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_seconds, trained, step = 0.0, 0, 0
    epochs = []
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()  # wall_time counts from the first training step, as tessera's
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(x_train), args.batch_size):
            if args.max_steps and step >= args.max_steps:
                break
            t0 = time.perf_counter()
            idx = perm[i:i + args.batch_size]
            x, y = x_train[idx], y_train[idx]
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
            train_seconds += time.perf_counter() - t0
            trained += len(idx)
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x_test), 1000):
                correct += (model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum().item()
        epochs.append({"epoch": epoch + 1, "test_accuracy": correct / len(x_test),
                       "wall_time": time.perf_counter() - start})
    print(json.dumps({"torch": torch.__version__, "torch_threads": args.torch_threads,
                      "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
                      "samples_per_s": trained / train_seconds, "epochs": epochs}))


if __name__ == "__main__":
    main()
