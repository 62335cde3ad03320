"""End-to-end training benchmark: tessera (`tessera train`) beside PyTorch (bench/torch_train.py,
Debian's python3-torch) on Fashion-MNIST, same models, batch, optimizer, schedule and data.

PyTorch runs at its best thread setting: for each model, a sweep first trains --sweep-steps
steps (--cnn-sweep-steps for the CNN) under each (torch threads x OPENBLAS_NUM_THREADS) pair in
--peer-configs, --runs times in turns, and the pair with the best median samples/s runs the
comparison. tessera runs with TESSERA_NUM_THREADS = --threads (default: all cores).

Prints, for the MLP and the CNN of examples/: training throughput (samples/s over training steps),
per-epoch test accuracy, time to 88% test accuracy (wall time from the first training step to the
end of the evaluation that first reaches it), and the whole job as a user feels it: one epoch
from process start to exit (start-up, data loading, training, test pass), wall time and peak
resident memory from /usr/bin/time -v. Each figure is the median of --runs runs (each run trains
both engines in turn) with the range (min-max) in brackets; ratios are tessera's median over
PyTorch's. The peer health check (bench/bench_env.py) runs at the winning configs; an unhealthy
peer marks the ratios INVALID and the script exits with status 3.

Usage: /usr/bin/python3 bench/run_train.py [--epochs 10] [--cnn-epochs 2] [--runs 3]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import bench_env
from bench_env import Stat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS MB)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("command failed: %s\n%s" % (" ".join(cmd), r.stderr[-3000:]))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return r.stdout, seconds, rss_kb / 1024.0


def run_tessera(build, model, epochs, threads, run_dir):
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [os.path.join(build, "tessera"), "train",
           os.path.join(ROOT, "examples", "fashion_mnist_%s.toml" % model), "--quiet",
           "--set", "train.epochs=%d" % epochs, "--set", 'train.run_dir="%s"' % run_dir]
    out, wall, rss = timed(cmd, env)
    rate = float(re.search(r"\(([\d.]+) samples/s\)", out).group(1))
    epochs_out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "test_accuracy" in m:
                epochs_out.append({"test_accuracy": m["test_accuracy"],
                                   "wall_time": m["wall_time"]})
    return {"samples_per_s": rate, "epochs": epochs_out, "job_wall": wall, "job_rss_mb": rss}


def run_torch(model, epochs, config, max_steps=0):
    tt, ob = config
    cmd = [bench_env.TORCH_PYTHON, os.path.join(HERE, "torch_train.py"), "--model", model,
           "--epochs", str(epochs), "--torch-threads", str(tt), "--max-steps", str(max_steps)]
    out, wall, rss = timed(cmd, bench_env.peer_env(ob))
    r = json.loads(out)
    r["job_wall"], r["job_rss_mb"] = wall, rss
    return r


def sweep(model, steps, configs, runs):
    """The config with PyTorch's best median samples/s over `steps` training steps."""
    rates = {cfg: [] for cfg in configs}
    for _ in range(runs):
        for cfg in configs:
            rates[cfg].append(run_torch(model, 1, cfg, max_steps=steps)["samples_per_s"])
    stats = {cfg: Stat(r) for cfg, r in rates.items()}
    best = max(configs, key=lambda cfg: stats[cfg].median)
    print("# PyTorch thread sweep, %s, samples/s over %d steps (torch threads x OpenBLAS threads): "
          "%s; best %s" % (model.upper(), steps, ", ".join("%s %s" % (bench_env.config_name(*cfg),
                                                    stats[cfg].fmt("%.0f")) for cfg in configs),
                        bench_env.config_name(*best)))
    return best


def time_to(runs, target):
    """Stat of the wall time at the first evaluation reaching target, over the runs that reach
    it, and how many did."""
    times = [next((e["wall_time"] for e in r["epochs"] if e["test_accuracy"] >= target), None)
             for r in runs]
    reached = [t for t in times if t is not None]
    if not reached:
        return "not reached"
    text = Stat(reached).fmt("%.1f", " s")
    return text if len(reached) == len(runs) else "%s, %d/%d runs" % (text, len(reached), len(runs))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=bench_env.HelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                        help="tessera's build directory")
    parser.add_argument("--epochs", type=int, default=10, help="MLP epochs")
    parser.add_argument("--cnn-epochs", type=int, default=2, help="CNN epochs")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each engine (and of each config in the sweep)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="TESSERA_NUM_THREADS for tessera; the default is all cores")
    parser.add_argument("--peer-configs", default="1x2,2x1,2x2",
                        help="torch threads x OPENBLAS_NUM_THREADS pairs PyTorch's sweep tries")
    parser.add_argument("--sweep-steps", type=int, default=300, help="MLP steps per sweep run")
    parser.add_argument("--cnn-sweep-steps", type=int, default=40, help="CNN steps per sweep run")
    args = parser.parse_args()
    configs = bench_env.parse_configs(args.peer_configs)
    print(bench_env.header("%s at the best of torch threads x OpenBLAS threads %s (swept per "
                           "model); tessera threads %d" % (bench_env.torch_version(),
                                                            args.peer_configs, args.threads)))
    tmp = tempfile.mkdtemp(prefix="tessera_bench_")
    winners = []
    reports = []
    for model, epochs, sweep_steps in (("mlp", args.epochs, args.sweep_steps),
                                       ("cnn", args.cnn_epochs, args.cnn_sweep_steps)):
        best = sweep(model, sweep_steps, configs, args.runs)
        winners.append(best)
        mine, theirs, one_mine, one_theirs = [], [], [], []
        run_dir = os.path.join(tmp, model)
        for i in range(args.runs):
            mine.append(run_tessera(args.build, model, epochs, args.threads, run_dir))
            theirs.append(run_torch(model, epochs, best))
            one_mine.append(run_tessera(args.build, model, 1, args.threads, run_dir))
            one_theirs.append(run_torch(model, 1, best))
            print("# %s: run %d/%d done" % (model, i + 1, args.runs), file=sys.stderr)
        reports.append((model, best, mine, theirs, one_mine, one_theirs))
    shutil.rmtree(tmp, ignore_errors=True)

    print()
    healthy = bench_env.peer_health(winners)
    invalid = "" if healthy else "  INVALID"
    for model, best, mine, theirs, one_mine, one_theirs in reports:
        print("\n%s, %d epochs, batch 128; PyTorch at %s (the sweep's best); median (min-max) of "
              "%d runs" % (model.upper(), len(mine[0]["epochs"]), bench_env.config_name(*best),
                        args.runs))
        print("  %-30s %-26s %-26s %s" % ("", "tessera", "PyTorch", "ratio"))

        def row(name, key, runs_a, runs_b, spec, unit=""):
            a, b = Stat(r[key] for r in runs_a), Stat(r[key] for r in runs_b)
            print("  %-30s %-26s %-26s %.2fx%s" % (name, a.fmt(spec, unit), b.fmt(spec, unit),
                                                   a.median / b.median, invalid))

        row("training samples/s", "samples_per_s", mine, theirs, "%.0f")
        final = [Stat(100 * r["epochs"][-1]["test_accuracy"] for r in runs).fmt("%.2f", "%")
                 for runs in (mine, theirs)]
        print("  %-30s %-26s %s" % ("final test accuracy", final[0], final[1]))
        for target in (0.88,) if model == "mlp" else (0.88, 0.91):
            print("  %-30s %-26s %s" % ("time to %.0f%% test accuracy" % (100 * target),
                                        time_to(mine, target), time_to(theirs, target)))
        row("1-epoch job wall time", "job_wall", one_mine, one_theirs, "%.2f", " s")
        row("1-epoch job peak RSS", "job_rss_mb", one_mine, one_theirs, "%.0f", " MB")
        for name, runs in ("tessera", mine), ("PyTorch", theirs):
            per_epoch = zip(*([e["test_accuracy"] for e in r["epochs"]] for r in runs))
            print("  test accuracy per epoch (%%, medians), %s: %s"
                  % (name, " ".join("%.2f" % (100 * Stat(e).median) for e in per_epoch)))
    print("\nratio > 1: tessera's figure is the larger (faster for samples/s; slower or bigger for "
          "wall time and RSS).")
    if not healthy:
        print("PEER UNHEALTHY: results invalid")
    print(bench_env.footer())
    if not healthy:
        sys.exit(3)


if __name__ == "__main__":
    main()
