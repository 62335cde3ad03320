"""Checks tessera against PyTorch: forward and backward of Linear, Conv2d, MaxPool2d, LayerNorm,
BatchNorm and softmax cross-entropy, and several steps of each optimizer, on random inputs.

Generates inputs and PyTorch's results in this run, runs tessera's reference_check on the same
inputs, and prints the normwise relative error max|tessera - torch| / max|torch| per output.
Exits 1 if any exceeds the tolerance (default 1e-5).

Needs Debian's python3-torch: /usr/bin/python3 tools/torch_reference.py [--build build/release]
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import torch

DTYPES = {torch.float32: 0, torch.float64: 1, torch.int32: 2, torch.int64: 3}
CODES = {v: k for k, v in DTYPES.items()}


def write_tensors(path, tensors):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(tensors)))
        for name, t in sorted(tensors.items()):
            t = t.detach().contiguous()
            name_bytes = name.encode()
            f.write(struct.pack("<Q", len(name_bytes)) + name_bytes)
            f.write(struct.pack("<II", DTYPES[t.dtype], t.dim()))
            f.write(struct.pack("<%dq" % t.dim(), *t.shape))
            f.write(t.numpy().tobytes())


def read_tensors(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    (count,) = take("<Q")
    for _ in range(count):
        (n,) = take("<Q")
        name = data[pos:pos + n].decode()
        pos += n
        code, rank = take("<II")
        shape = take("<%dq" % rank)
        dtype = CODES[code]
        numel = 1
        for s in shape:
            numel *= s
        nbytes = numel * torch.tensor([], dtype=dtype).element_size()
        buf = bytearray(data[pos:pos + nbytes])
        pos += nbytes
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(shape) if numel else torch.zeros(shape, dtype=dtype)
    return out


def module_case(inputs, expected, prefix, module, x_shape):
    x = torch.randn(*x_shape, requires_grad=True)
    for name, p in module.named_parameters():
        with torch.no_grad():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name == "weight" and p.dim() == 1 else 0.0))
        inputs[prefix + name] = p.detach().clone()
    y = module(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    inputs[prefix + "x"] = x.detach()
    inputs[prefix + "gy"] = gy
    expected[prefix + "y"] = y.detach()
    expected[prefix + "dx"] = x.grad
    for name, p in module.named_parameters():
        expected[prefix + "d" + name] = p.grad
    for name, b in module.named_buffers():
        if b.dtype.is_floating_point:
            expected[prefix + name] = b.detach()


def optimizer_case(inputs, expected, prefix, make, steps=5):
    p = torch.randn(50, requires_grad=True)
    inputs[prefix + "p0"] = p.detach().clone()
    opt = make([p])
    for step in range(steps):
        g = torch.randn(50)
        inputs[prefix + "g%d" % step] = g
        p.grad = g.clone()
        opt.step()
        expected[prefix + "p%d" % (step + 1)] = p.detach().clone()


def build_cases():
    torch.manual_seed(0)
    inputs, expected = {}, {}
    module_case(inputs, expected, "linear.", torch.nn.Linear(20, 30), (16, 20))
    module_case(inputs, expected, "conv.", torch.nn.Conv2d(3, 8, 3, padding=1), (4, 3, 12, 12))
    module_case(inputs, expected, "conv_s2.", torch.nn.Conv2d(3, 8, 3, stride=2), (4, 3, 13, 13))
    module_case(inputs, expected, "pool.", torch.nn.MaxPool2d(2), (4, 3, 12, 12))
    module_case(inputs, expected, "pool3.", torch.nn.MaxPool2d(3, 2, 1), (4, 3, 11, 11))
    module_case(inputs, expected, "layernorm.", torch.nn.LayerNorm(16), (8, 16))
    module_case(inputs, expected, "batchnorm.", torch.nn.BatchNorm2d(6), (8, 6, 5, 5))
    for prefix, smoothing in (("ce.", 0.0), ("ce_smooth.", 0.1)):
        logits = torch.randn(16, 10, requires_grad=True)
        labels = torch.randint(0, 10, (16,))
        loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        loss.backward()
        inputs[prefix + "logits"] = logits.detach()
        inputs[prefix + "labels"] = labels
        inputs[prefix + "smoothing"] = torch.tensor(smoothing, dtype=torch.float64)
        expected[prefix + "loss"] = loss.detach()
        expected[prefix + "dlogits"] = logits.grad
    optimizer_case(inputs, expected, "sgd.",
                   lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2))
    optimizer_case(inputs, expected, "nesterov.",
                   lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True))
    optimizer_case(inputs, expected, "adam.",
                   lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2))
    optimizer_case(inputs, expected, "adamw.",
                   lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2))
    optimizer_case(inputs, expected, "adagrad.",
                   lambda p: torch.optim.Adagrad(p, lr=1e-1, lr_decay=1e-3))
    return inputs, expected


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build/release", help="tessera build directory")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    binary = os.path.join(args.build, "tools", "reference_check")
    if not os.path.exists(binary):
        sys.exit("%s not found: build tessera first (make build)" % binary)
    inputs, expected = build_cases()
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        write_tensors(in_path, inputs)
        subprocess.run([binary, in_path, out_path], check=True)
        got = read_tensors(out_path)
    print("torch %s, float32, tolerance %.0e (normwise: max|tessera - torch| / max|torch|)"
          % (torch.__version__, args.tolerance))
    print("%-26s %-14s %12s  %s" % ("output", "shape", "rel. error", "result"))
    failed = 0
    for name, ref in sorted(expected.items()):
        if name not in got:
            print("%-26s %-14s %12s  MISSING" % (name, list(ref.shape), "-"))
            failed += 1
            continue
        mine = got[name].to(torch.float64)
        ref64 = ref.to(torch.float64)
        scale = max(ref64.abs().max().item(), 1e-30)
        err = (mine - ref64).abs().max().item() / scale if ref64.numel() else 0.0
        ok = err <= args.tolerance and mine.shape == ref64.shape
        failed += not ok
        print("%-26s %-14s %12.2e  %s" % (name, str(list(ref.shape)).replace(" ", ""), err, "ok" if ok else "FAIL"))
    print("%d passed, %d failed" % (len(expected) - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
