"""Collective bandwidth, median of several runs of bench/comm_bench.

Each run measures every backend beside raw Gloo and raw MPI in the same processes, alternating op
by op (see `comm_bench --help`); this script repeats it and prints, for each op, size and
backend, the median busbw over the runs and the median of the per-run ratios against the peer,
each with its range (min-max). On 2 cores one run swings by 10-30%: the medians are the figures
to quote. The peers are raw Gloo and raw MPI, not PyTorch, so bench/bench_env.py's PyTorch health
check does not apply; the header names the machine and environment as every bench/run_* does.

Usage: bench/run_comm.sh [--runs 9] [comm_bench options, e.g. --sizes 1M..16M]
"""
import argparse
import subprocess
import sys
from collections import defaultdict

import bench_env
from bench_env import Stat


DEFAULT_ARGS = ["--nproc", "2", "--op", "allreduce", "--sizes", "1M..16M", "--backend", "all"]


def parse(text):
    """Rows of one run: (op, size, backend) -> (busbw, ratio or None)."""
    rows = {}
    op = size = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] in ("allreduce", "allgather", "reduce_scatter", "broadcast"):
            op, size = fields[0], fields[1]
            fields = fields[3:]
        backend, busbw = fields[0], float(fields[3])
        ratio = float(fields[4].rstrip("x")) if len(fields) > 4 else None
        peer = fields[5] if len(fields) > 5 else ""
        rows[(op, size, backend)] = (busbw, ratio, peer)
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=bench_env.HelpFormatter,
        epilog="Other options go to bench/comm_bench (default: %s)." % " ".join(DEFAULT_ARGS))
    parser.add_argument("--runs", type=int, default=9, help="runs of bench/comm_bench")
    parser.add_argument("--binary", default="build/release/bench/comm_bench", help="the comm_bench binary")
    args, bench_args = parser.parse_known_args()
    bench_args = bench_args or DEFAULT_ARGS
    command = [args.binary] + bench_args
    print(bench_env.header("raw Gloo and raw MPI, run in the same processes as tessera's "
                           "backends (no PyTorch here, so no peer health check)"))
    print(f"# {' '.join(command)}, {args.runs} runs; medians over runs")
    runs = []
    for i in range(args.runs):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"run {i + 1} failed ({result.returncode}):\n{result.stderr}")
        runs.append(parse(result.stdout))
        print(f"# run {i + 1}/{args.runs} done", file=sys.stderr)
    keys = list(runs[0].keys())
    busbw = defaultdict(list)
    ratios = defaultdict(list)
    for run in runs:
        for key in keys:
            bw, ratio, _ = run[key]
            busbw[key].append(bw)
            if ratio is not None:
                ratios[key].append(ratio)
    print(f"{'op':<15}{'size':>6}  {'backend':<11}{'busbw GB/s (min-max)':<22}vs peer (min-max)")
    for key in keys:
        op, size, backend = key
        line = f"{op:<15}{size:>6}  {backend:<11}{Stat(busbw[key]).fmt('%.2f'):<22}"
        if ratios[key]:
            r = Stat(ratios[key])
            line += f"{r.median:.2f}x {runs[0][key][2]}"
            if len(r.values) > 1:
                line += f" ({r.lo:.2f}-{r.hi:.2f})"
        print(line.rstrip())
    print(bench_env.footer())


if __name__ == "__main__":
    main()
