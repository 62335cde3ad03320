"""Collective bandwidth, median of several runs of `tessera bench comm`.

Each run measures every backend beside raw Gloo and raw MPI in the same processes, alternating op
by op (see `tessera bench comm --help`); this script repeats it and prints, for each op, size and
backend, the median busbw over the runs and the median of the per-run ratios against the peer.
On 2 cores one run swings by 10-30%: the medians are the figures to quote.

Usage: bench/run_comm.sh [--runs 9] [tessera bench comm options, e.g. --sizes 1M..16M]
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--binary", default="build/release/tessera")
    args, bench_args = parser.parse_known_args()
    if not bench_args:
        bench_args = ["--nproc", "2", "--op", "allreduce", "--sizes", "1M..16M", "--backend", "all"]
    command = [args.binary, "bench", "comm"] + bench_args
    print(f"# machine: {cpu_model()}, {os.cpu_count()} cores; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
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
    print(f"{'op':<15}{'size':>6}  {'backend':<10}{'busbw GB/s':>11}  {'vs peer (median, min-max)':<30}")
    for key in keys:
        op, size, backend = key
        line = f"{op:<15}{size:>6}  {backend:<10}{statistics.median(busbw[key]):>11.2f}"
        if ratios[key]:
            r = ratios[key]
            line += (f"  {statistics.median(r):.2f}x {runs[0][key][2]}"
                     f" ({min(r):.2f}-{max(r):.2f})")
        print(line)


if __name__ == "__main__":
    main()
