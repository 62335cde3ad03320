"""The parameter server's benchmark (issue 11): push/pull speed of tessera's parameter server
(bench/ps_bench) against ps-lite, then training throughput and convergence of the Fashion-MNIST
MLP through parameter servers in bsp, asp and ssp.

ps-lite two ways. Its figures as issue 11 quotes them, measured by the issue's author on a 2-core
machine of this kind (1 server, 1 worker, loopback, ZeroMQ): dense push+pull round trip 0.70 ms
at 1 MiB (3.0 GB/s) and 3.1 GB/s at 16 MiB; sparse (dim 16) 3.0M keys/s at 1k keys per batch,
8.6M at 10k, 3.7M at 100k. And, with --pslite PATH (a ps-lite checkout; bench/run_pslite.sh builds
it), ps-lite measured on this machine in this run, the same cases, its server applying SGD to a
store as tessera's do. The goals are tessera >= 1.5x the dense figures and >= 2x the sparse ones,
on the 1 server + 1 worker configuration; each table says which are met against either.

tessera runs each case twice: its workers passing message bodies through memory shared with the
servers on this host (the default, `shared`), and through the socket only (`socket`, ps_bench
--socket-only: ps-lite's transport, loopback TCP, the like-for-like row).

Push/pull: --runs runs of ps_bench (servers and workers as separate processes on loopback, ASP,
each worker timing its own rounds; see `ps_bench --help`); each figure is the median over the runs
with the range (min-max). A dense round is a push of the whole table and a pull of it (MB/s =
2 * table bytes / round, MB = 1e6 bytes); a sparse round is a push of a batch's gradients and a
pull of its rows (keys/s = keys in the batch / round). "per worker" is the median over workers of
each worker's median round; "aggregate" sums the workers' throughput. The socket runs first send
the dense sizes over raw TCP to an echo process and back (ps_bench --roofline): what loopback TCP
allows this machine for a dense round's bytes.

Training: `tessera train examples/fashion_mnist_mlp_ps.toml --nproc 4` (2 servers + 2 workers)
once per consistency mode; samples/s and the test accuracy from the final line, wall time of the
whole command, and the curves of test accuracy against wall time (metrics.jsonl) in one PNG
drawn by bench/plot_ps.py (matplotlib).

Usage: bench/run_ps.sh [--runs 5] [--pslite PATH] [--quick] [--no-train] [--modes bsp,asp,ssp]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict

import bench_env
from bench_env import Stat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MiB = 1 << 20

# ps-lite, 1 server + 1 worker, from issue 11 (not measured here).
PSLITE_DENSE_MBPS = {1 * MiB: 2 * MiB / 0.70e-3 / 1e6, 16 * MiB: 3100.0}  # 1 MiB: 0.70 ms round
PSLITE_DENSE_TEXT = {1 * MiB: "0.70 ms, 3.0 GB/s", 16 * MiB: "3.1 GB/s"}
PSLITE_SPARSE_KEYS = {1000: 3.0e6, 10000: 8.6e6, 100000: 3.7e6}
DENSE_GOAL, SPARSE_GOAL = 1.5, 2.0


def size_text(n):
    for unit, name in ((MiB, "MiB"), (1024, "KiB")):
        if n >= unit and n % unit == 0:
            return "%d %s" % (n // unit, name)
    return "%d B" % n


def keys_text(n):
    return "%dk" % (n // 1000) if n % 1000 == 0 else str(n)


def load():
    return "load average %.2f" % os.getloadavg()[0]


def cpu_times():
    """(steal, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def steal_since(start):
    """The share of CPU time the hypervisor took from this machine since `start` (cpu_times())."""
    steal, total = cpu_times()
    return "cpu steal %.1f%%" % (100.0 * (steal - start[0]) / max(1, total - start[1]))


def run_ps_bench(args, extra, transport):
    """One ps_bench run: {(kind, servers, workers, size): (round_ms, per_worker, aggregate)}."""
    cmd = [args.binary, "--configs", args.configs, "--min-time", str(args.min_time)]
    if transport == "socket":
        cmd.append("--socket-only")
        if not args.no_roofline:
            cmd.append("--roofline")
    cmd += extra
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("ps_bench failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr[-3000:]))
    rows = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] in ("dense", "sparse", "tcp"):
            rows[(f[0], int(f[1]), int(f[2]), int(f[3]))] = tuple(float(x) for x in f[4:7])
    return cmd, rows


def run_pslite(args):
    """ps-lite on this machine (bench/run_pslite.sh): {(kind, size): [rate per run]}, its server
    keeping a store; rates in MB/s (dense) or keys/s (sparse), as ps_bench's."""
    cmd = [os.path.join(HERE, "run_pslite.sh"), args.pslite, str(args.runs)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("run_pslite.sh failed (%d):\n%s" % (r.returncode, (r.stdout + r.stderr)[-3000:]))
    rates = defaultdict(list)
    with open(os.path.join(ROOT, "build", "pslite", "results.txt")) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 7 and fields[0] == "store" and fields[2] == "pslite":
                kind, size, seconds = fields[3], int(fields[4]), float(fields[6])
                rates[(kind, size)].append(2 * size / seconds / 1e6 if kind == "dense"
                                           else size / seconds)
    return rates


def series_of(runs):
    """(kind, servers, workers, size) -> ([round_ms], [per_worker], [aggregate]) over the runs."""
    series = defaultdict(lambda: ([], [], []))
    for run in runs:
        for k, values in run.items():
            for i in range(3):
                series[k][i].append(values[i])
    return series


def verdict(values, anchor, goal, goals):
    """tessera's rates over an anchor's, and whether the median meets the goal."""
    ratio = Stat([v / anchor for v in values])
    ok = ratio.median >= goal
    goals.append(ok)
    return "%s %s" % (ratio.fmt("%.2f", "x"), "met" if ok else "MISSED")


def print_push_pull(runs, transport, pslite, goals):
    """Prints the tables of one transport's runs; appends (anchor, met) to goals."""
    series = series_of(runs)
    keys = list(runs[0].keys())
    tcp = [k for k in keys if k[0] == "tcp"]
    if tcp:
        print()
        print("loopback roofline: raw TCP, SIZE bytes to an echo process and back (a dense round's "
              "bytes, no parameter server); medians over %d runs (min-max)" % len(runs))
        print("%-10s %-26s %s" % ("size", "round ms", "MB/s"))
        for k in tcp:
            ms, rate, _ = (Stat(v) for v in series[k])
            print("%-10s %-26s %s" % (size_text(k[3]), ms.fmt("%.3f"), rate.fmt("%.0f")))
    for kind in ("dense", "sparse"):
        rows = [k for k in keys if k[0] == kind]
        if not rows:
            continue
        print()
        if kind == "dense":
            print("tessera through %s: dense push+pull, one table; medians over %d runs (min-max); "
                  "vs TCP: per-worker MB/s over the raw TCP roofline's, run by run"
                  % (transport, len(runs)))
            unit, anchors, goal = "MB/s", PSLITE_DENSE_MBPS, DENSE_GOAL
        else:
            print("tessera through %s: sparse push+pull, dim 16, SGD, distinct uniform 64-bit keys; "
                  "medians over %d runs (min-max)" % (transport, len(runs)))
            unit, anchors, goal = "Mkeys/s", PSLITE_SPARSE_KEYS, SPARSE_GOAL
        size_head = "table" if kind == "dense" else "keys/batch"
        vs_head = "vs TCP" if kind == "dense" and tcp else ""
        print("%-5s %-10s %-26s %-24s %-24s %-16s %-19s %-20s %-18s %s"
              % ("SxW", size_head, "round ms", "per worker " + unit, "aggregate " + unit, vs_head,
                 "ps-lite (issue 11)", "x it, >= %.1fx" % goal, "ps-lite here", "x it"))
        for k in rows:
            _, servers, workers, size = k
            scale = 1.0 if kind == "dense" else 1e-6  # MB/s or Mkeys/s
            ms, per_worker, aggregate = (Stat([x * f for x in v]) for v, f in
                                         zip(series[k], (1.0, scale, scale)))
            spec = "%.0f" if kind == "dense" else "%.2f"
            vs = ""
            roof = ("tcp", 1, 1, size)
            if kind == "dense" and (servers, workers) == (1, 1) and roof in series:
                vs = Stat([a / b for a, b in zip(series[k][1], series[roof][1])]).fmt("%.2f", "x")
            line = "%-5s %-10s %-26s %-24s %-24s %-16s" % (
                "%dx%d" % (servers, workers),
                size_text(size) if kind == "dense" else keys_text(size), ms.fmt("%.3f"),
                per_worker.fmt(spec), aggregate.fmt(spec), vs)
            if (servers, workers) == (1, 1) and size in anchors:
                anchor = anchors[size]
                text = PSLITE_DENSE_TEXT[size] if kind == "dense" else "%.1fM keys/s" % (anchor / 1e6)
                line += " %-19s %-20s" % (text, verdict(series[k][1], anchor, goal,
                                                          goals[("issue", transport)]))
                if (kind, size) in pslite:
                    here = pslite[(kind, size)]
                    line += " %-18s %s" % (Stat([x * scale for x in here]).fmt(spec),
                                           verdict(series[k][1], Stat(here).median, goal,
                                                   goals[("here", transport)]))
            print(line.rstrip())
        if kind == "dense" and tcp:
            for size, anchor in PSLITE_DENSE_MBPS.items():
                roof = ("tcp", 1, 1, size)
                if roof in series:
                    need = goal * anchor
                    have = Stat(series[roof][1]).median
                    print("# the goal at %s, %.1fx ps-lite = %.0f MB/s, is %.2fx the raw TCP "
                          "roofline of this run (%.0f MB/s)%s"
                          % (size_text(size), goal, need, need / have, have,
                             ": out of reach over loopback TCP here" if need > have else ""))


def train(args, mode, out_dir):
    run_dir = os.path.join(out_dir, mode)
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [args.tessera, "train", args.config, "--nproc", "4", "-q",
           "--set", 'parallel.consistency="%s"' % mode, "--set", 'train.run_dir="%s"' % run_dir]
    if args.epochs:
        cmd += ["--set", "train.epochs=%d" % args.epochs]
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    if r.returncode != 0:
        sys.exit("training failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout[-2000:],
                                                      r.stderr[-3000:]))
    m = re.search(r"trained (\d+) steps in ([\d.]+) s \(([\d.]+) samples/s\); test accuracy "
                  r"([\d.]+)%", r.stdout)
    if not m:
        sys.exit("no result line in the output of %s:\n%s" % (" ".join(cmd), r.stdout[-2000:]))
    curve = []
    metrics = os.path.join(run_dir, "metrics.jsonl")
    with open(metrics) as f:
        for line in f:
            entry = json.loads(line)
            if "test_accuracy" in entry:
                curve.append((entry["wall_time"], entry["test_accuracy"]))
    return {"steps": int(m.group(1)), "train_s": float(m.group(2)), "rate": float(m.group(3)),
            "accuracy": float(m.group(4)), "wall": wall, "curve": curve, "metrics": metrics,
            "cmd": cmd}


def print_training(args, out_dir):
    modes = args.modes.split(",")
    print()
    epochs = "%d epoch%s" % (args.epochs, "" if args.epochs == 1 else "s") if args.epochs \
        else "the config's epochs"
    print("training: %s --nproc 4 (2 servers + 2 workers; %s), once per mode"
          % (os.path.relpath(args.config, ROOT), epochs))
    threads = os.environ.get("TESSERA_NUM_THREADS")
    print("# threads per process: %s" % (
        "TESSERA_NUM_THREADS=%s" % threads if threads else
        "max(1, %d cores / 4 local ranks) = %d (tessera's default)"
        % (os.cpu_count(), max(1, os.cpu_count() // 4))))
    results = {}
    for mode in modes:
        before, start = load(), cpu_times()
        results[mode] = train(args, mode, out_dir)
        print("# %s: %s before, %s after, %s: %s" % (mode, before, load(), steal_since(start),
                                                     " ".join(results[mode]["cmd"][1:])))
    base = results.get("bsp")
    print("%-5s %-8s %-12s %-10s %-12s %-12s %s" % ("mode", "steps", "samples/s", "vs bsp",
                                                    "test acc", "train s", "wall s (command)"))
    for mode, r in results.items():
        vs = "%.2fx" % (r["rate"] / base["rate"]) if base else "-"
        print("%-5s %-8d %-12.0f %-10s %-12s %-12.1f %.1f" % (mode, r["steps"], r["rate"], vs,
                                                            "%.2f%%" % r["accuracy"], r["train_s"],
                                                            r["wall"]))
    print("test accuracy after each epoch (wall time s: accuracy %):")
    for mode, r in results.items():
        print("  %-4s %s" % (mode, "  ".join("%.1f:%.2f" % (t, 100 * a) for t, a in r["curve"])))
    png = os.path.join(out_dir, "ps_convergence.png")
    cmd = [args.python, os.path.join(HERE, "plot_ps.py"), "--out", png,
           "--title", "Fashion-MNIST MLP, 2 servers + 2 workers: test accuracy against wall time"]
    cmd += ["%s=%s" % (mode, r["metrics"]) for mode, r in results.items()]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print("# plot failed (%d): %s" % (p.returncode, p.stderr.strip()[-1000:]))
    else:
        print("convergence curves: %s" % png)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=bench_env.HelpFormatter,
        epilog="Other options go to ps_bench, e.g. --sizes 1M,16M --keys 10k --only dense.")
    parser.add_argument("--runs", type=int, default=5, help="runs of ps_bench")
    parser.add_argument("--configs", default="1x1,2x2", help="servers x workers of ps_bench")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds each worker times each case, per run")
    parser.add_argument("--quick", action="store_true",
                        help="a short check: 2 runs of 0.2 s per case, 1 training epoch per mode")
    parser.add_argument("--no-train", action="store_true", help="skip the training part")
    parser.add_argument("--pslite", metavar="PATH",
                        help="a ps-lite checkout: measure ps-lite here too (bench/run_pslite.sh)")
    parser.add_argument("--no-roofline", action="store_true",
                        help="skip the raw TCP echo that gives the loopback roofline")
    parser.add_argument("--modes", default="bsp,asp,ssp", help="consistency modes to train")
    parser.add_argument("--epochs", type=int, default=0,
                        help="training epochs (0: the config's, 10)")
    parser.add_argument("--config", help="the training config",
                        default=os.path.join(ROOT, "examples", "fashion_mnist_mlp_ps.toml"))
    parser.add_argument("--binary", help="the ps_bench binary",
                        default=os.path.join(ROOT, "build/release/bench/ps_bench"))
    parser.add_argument("--tessera", help="the tessera binary",
                        default=os.path.join(ROOT, "build/release/tessera"))
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "runs", "bench_ps"),
                        help="training runs and the PNG")
    parser.add_argument("--python", default=bench_env.TORCH_PYTHON,
                        help="interpreter with matplotlib (Debian's python3-matplotlib)")
    args, extra = parser.parse_known_args()
    first = cpu_times()
    if args.quick:
        args.runs, args.min_time, args.epochs = 2, 0.2, args.epochs or 1
    pslite = run_pslite(args) if args.pslite else {}
    print(bench_env.header("ps-lite: the figures issue 11 gives (ZeroMQ, 1 server + 1 worker, "
                           "loopback, a 2-core machine of this kind)%s"
                           % (", and measured here by bench/run_pslite.sh (medians of %d runs)"
                              % args.runs if pslite else "; not measured here (no --pslite)")))
    print("# threads: ps_bench has no compute threads (a server: an accept thread and one per "
          "connection; a worker: the caller and a heartbeat thread)")
    goals = defaultdict(list)
    for transport in ("shared", "socket"):
        start = cpu_times()
        runs = []
        for i in range(args.runs):
            cmd, rows = run_ps_bench(args, extra, transport)
            runs.append(rows)
            print("# ps_bench (%s) run %d/%d done, %s" % (transport, i + 1, args.runs, load()),
                  file=sys.stderr)
        cmd[0] = os.path.relpath(cmd[0], ROOT)
        print("\n# %s, %d runs; %s after them, %s during them"
              % (" ".join(cmd), args.runs, load(), steal_since(start)))
        print_push_pull(runs, transport, pslite, goals)
    print()
    for (anchor, transport), met in sorted(goals.items()):
        print("goals, tessera through %s against ps-lite %s: %d of %d met"
              % (transport, "as issue 11 gives it" if anchor == "issue" else "measured here",
                 sum(met), len(met)))
    if not args.no_train:
        os.makedirs(args.out_dir, exist_ok=True)
        print_training(args, args.out_dir)
    print("# %s over the whole run" % steal_since(first))
    print(bench_env.footer())


if __name__ == "__main__":
    main()
