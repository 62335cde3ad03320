"""Core benchmark: tessera (bench/core_bench, Google Benchmark) beside PyTorch (bench/torch_core.py,
Debian's python3-torch) in one run, on the same machine, environment and thread counts.

PyTorch is configured at its best: it runs under each (torch threads x OPENBLAS_NUM_THREADS) pair
in --peer-configs and each benchmark keeps the config with the best median (oversubscribed
threads cost it 5x on 2 cores); the table names the winner. tessera runs with
TESSERA_NUM_THREADS = --threads (default: all cores). Every figure is the median of
--repetitions timed repetitions of at least 0.5 s, with their range (min-max) in brackets; ratios
are tessera's median over PyTorch's. The peer health check (bench/bench_env.py) then runs at the
winning configs; an unhealthy peer marks the ratios INVALID and the script exits with status 3.

Usage: /usr/bin/python3 bench/run_core.py [--build build/release] [--repetitions 5]
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

import bench_env
from bench_env import Stat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_tessera(build, threads, repetitions):
    """{benchmark run name: {counter: [value of each repetition]}}"""
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    out = subprocess.run(
        [os.path.join(build, "bench", "core_bench"), "--benchmark_format=json",
         "--benchmark_repetitions=%d" % repetitions, "--benchmark_enable_random_interleaving=true"],
        env=env, check=True, capture_output=True, text=True).stdout
    runs = defaultdict(lambda: defaultdict(list))
    for b in json.loads(out)["benchmarks"]:
        if b["run_type"] == "iteration":
            for counter in ("GFLOPS", "samples/s"):
                if counter in b:
                    runs[b["run_name"]][counter].append(b[counter])
    return runs


def run_torch(torch_threads, openblas_threads, repetitions):
    out = subprocess.run([bench_env.TORCH_PYTHON, os.path.join(HERE, "torch_core.py"),
                          "--torch-threads", str(torch_threads), "--repetitions", str(repetitions)],
                         env=bench_env.peer_env(openblas_threads), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=bench_env.HelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                        help="tessera's build directory")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="TESSERA_NUM_THREADS for tessera; the default is all cores")
    parser.add_argument("--repetitions", type=int, default=5,
                        help="timed repetitions of each benchmark, per engine and config")
    parser.add_argument("--peer-configs", default="1x2,2x1,2x2",
                        help="torch threads x OPENBLAS_NUM_THREADS pairs for PyTorch")
    args = parser.parse_args()

    if not os.path.exists(os.path.join(args.build, "bench", "core_bench")):
        sys.exit("core_bench not built in %s: run `make build` first" % args.build)
    configs = bench_env.parse_configs(args.peer_configs)
    print(bench_env.header("%s at the best of torch threads x OpenBLAS threads %s; tessera "
                           "threads %d" % (bench_env.torch_version(), args.peer_configs,
                                           args.threads)))
    t = run_tessera(args.build, args.threads, args.repetitions)
    peers = [run_torch(tt, ob, args.repetitions) for tt, ob in configs]

    def mine(name, counter):
        return Stat(v / 1e9 if counter == "GFLOPS" else v for v in t[name + "/real_time"][counter])

    def best(key):
        """(Stat, config) of the config with the best median for this benchmark."""
        return max(((Stat(p[key]), (p["torch_threads"], p["openblas_threads"])) for p in peers),
                   key=lambda sc: sc[0].median)

    rows = []  # (name, tessera Stat or number, PyTorch Stat or None, peer config, format)

    def versus(name, ours, key, spec):
        rows.append((name, ours) + best(key) + (spec,))

    def alone(name, ours, spec):
        rows.append((name, ours, None, None, spec))

    for shape in ("128/784/512", "512/512/512"):
        x = shape.replace("/", "x")
        matmul, raw = mine("BM_Matmul/" + shape, "GFLOPS"), mine("BM_RawSgemm/" + shape, "GFLOPS")
        versus("matmul %s GFLOP/s" % x, matmul, "matmul_%s_gflops" % x, "%.1f")
        alone("  raw oneDNN sgemm (tessera's roofline)", raw, "%.1f")
        alone("  raw OpenBLAS sgemm, tessera's threads",
              mine("BM_RawOpenblasSgemm/" + shape, "GFLOPS"), "%.1f")
        alone("  tessera matmul / raw oneDNN sgemm", matmul.median / raw.median, "%.2f")
    versus("conv2d fwd+bwd samples/s (128x32x14x14, 64 5x5)", mine("BM_Conv2dStep", "samples/s"),
           "conv2d_step_samples_per_s", "%.0f")
    mlp, roof = mine("BM_MlpStep", "samples/s"), mine("BM_MlpStepGemms", "samples/s")
    versus("MLP step samples/s (784-512-256-10, b128, SGD mom.)", mlp, "mlp_step_samples_per_s",
           "%.0f")
    alone("  sgemm roofline samples/s (the step's 8 GEMMs alone)", roof, "%.0f")
    alone("  MLP step / roofline", mlp.median / roof.median, "%.2f")

    print()
    healthy = bench_env.peer_health([cfg for _, _, _, cfg, _ in rows if cfg])
    print()
    print("%-54s %-24s %-24s %8s  %s" % ("benchmark, median (min-max)", "tessera", "PyTorch",
                                          "ratio", "peer cfg"))
    for name, ours, peer, cfg, spec in rows:
        if peer is None:
            print("%-54s %s" % (name, ours.fmt(spec) if isinstance(ours, Stat) else spec % ours))
        else:
            print("%-54s %-24s %-24s %7.2fx  %s%s" % (
                name, ours.fmt(spec), peer.fmt(spec), ours.median / peer.median,
                bench_env.config_name(*cfg), "" if healthy else "  INVALID"))
    print("ratio > 1: tessera faster. peer cfg: torch threads x OPENBLAS_NUM_THREADS of PyTorch's "
          "best median.")
    if not healthy:
        print("PEER UNHEALTHY: results invalid")
    print(bench_env.footer())
    if not healthy:
        sys.exit(3)


if __name__ == "__main__":
    main()
