"""Convergence curves of parameter-server training runs in one PNG: test accuracy against wall
time, one line per run, read from each run's metrics.jsonl (the epoch lines, which carry
test_accuracy and wall_time). bench/run_ps.py calls it for bsp, asp and ssp.

Needs matplotlib (Debian's python3-matplotlib, installed by scripts/install-bench-deps.sh).

Usage: /usr/bin/python3 bench/plot_ps.py --out curves.png bsp=runs/a/metrics.jsonl asp=...
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def curve(path):
    """[(wall seconds, test accuracy %)] of the run's epoch lines."""
    points = []
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            if "test_accuracy" in entry:
                points.append((entry["wall_time"], 100.0 * entry["test_accuracy"]))
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="test accuracy against wall time")
    parser.add_argument("runs", nargs="+", metavar="LABEL=METRICS_JSONL")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in args.runs:
        label, _, path = run.partition("=")
        points = curve(path)
        if not points:
            raise SystemExit("%s: no epoch lines with test_accuracy" % path)
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label="%s (%.2f%% at %.0f s)" % (label, ys[-1], xs[-1]))
    ax.set_xlabel("wall time since the start of training (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(args.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
