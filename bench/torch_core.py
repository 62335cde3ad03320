"""PyTorch side of bench/run_core.sh: the same matmul, conv2d step and MLP step as
bench/core_bench.cc, timed the same way (median of repeats). Prints one JSON object.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_core.py --torch-threads N
(OPENBLAS_NUM_THREADS must be set in the environment before start, as the driver does)."""
import argparse
import json
import os
import statistics
import time

import torch


def timeit(fn, min_time=0.5, repeats=5):
    fn()  # warm-up
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > min_time / repeats:
            break
        n *= 2
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def bench_matmul(m, k, n):
    a, b = torch.randn(m, k), torch.randn(k, n)
    t = timeit(lambda: torch.mm(a, b))
    return 2.0 * m * n * k / t / 1e9


def bench_conv():
    conv = torch.nn.Conv2d(32, 64, 5, padding=2)
    x = torch.randn(128, 32, 14, 14, requires_grad=True)

    def step():
        conv.zero_grad()
        x.grad = None
        conv(x).sum().backward()

    return 128 / timeit(step)


def bench_mlp():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(128, 784)
    y = torch.arange(128) % 10

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return 128 / timeit(step)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch-threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    result = {
        "torch": torch.__version__,
        "torch_threads": args.torch_threads,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "matmul_128x784x512_gflops": bench_matmul(128, 784, 512),
        "matmul_512x512x512_gflops": bench_matmul(512, 512, 512),
        "conv2d_step_samples_per_s": bench_conv(),
        "mlp_step_samples_per_s": bench_mlp(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
