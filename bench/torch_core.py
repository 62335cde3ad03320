"""PyTorch side of bench/run_core.sh: the same matmul, conv2d step and MLP step as
bench/core_bench.cc, each timed in --repetitions batches of at least 0.5 s (as Google Benchmark
times each repetition). Prints one JSON object: each benchmark's rate in every batch.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_core.py --torch-threads N
(OPENBLAS_NUM_THREADS must be set in the environment before start, as the driver does)."""
import argparse
import json
import os

import torch

from bench_env import timeit


def rates(work, fn, repetitions):
    return [work / t for t in timeit(fn, repeats=repetitions, batch_seconds=0.5)]


def bench_matmul(m, k, n, repetitions):
    a, b = torch.randn(m, k), torch.randn(k, n)
    return rates(2.0 * m * n * k / 1e9, lambda: torch.mm(a, b), repetitions)


def bench_conv(repetitions):
    conv = torch.nn.Conv2d(32, 64, 5, padding=2)
    x = torch.randn(128, 32, 14, 14, requires_grad=True)

    def step():
        conv.zero_grad()
        x.grad = None
        conv(x).sum().backward()

    return rates(128, step, repetitions)


def bench_mlp(repetitions):
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

    return rates(128, step, repetitions)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch-threads", type=int, required=True)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    reps = args.repetitions
    result = {
        "torch_threads": args.torch_threads,
        "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "matmul_128x784x512_gflops": bench_matmul(128, 784, 512, reps),
        "matmul_512x512x512_gflops": bench_matmul(512, 512, 512, reps),
        "conv2d_step_samples_per_s": bench_conv(reps),
        "mlp_step_samples_per_s": bench_mlp(reps),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
