"""End-to-end training benchmark: tessera (`tessera train`) beside PyTorch (bench/torch_train.py,
Debian's python3-torch) on Fashion-MNIST, same models, batch, optimizer, schedule and threads.

Prints, for the MLP and the CNN of examples/: training throughput (samples/s over training steps),
per-epoch test accuracy, time to 88% test accuracy (wall time from the first training step to the
end of the evaluation that first reaches it), and the whole job as a user feels it: one epoch
from process start to exit (start-up, data loading, training, test pass), wall time and peak
resident memory from /usr/bin/time -v.

Usage: /usr/bin/python3 bench/run_train.py [--epochs 10] [--cnn-epochs 3] [--build build/release]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

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
    cmd = [os.path.join(build, "tessera"), "train", os.path.join(ROOT, "examples", "fashion_mnist_%s.toml" % model),
           "--quiet", "--set", "train.epochs=%d" % epochs, "--set", 'train.run_dir="%s"' % run_dir]
    out, wall, rss = timed(cmd, env)
    rate = float(re.search(r"\(([\d.]+) samples/s\)", out).group(1))
    epochs_out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "test_accuracy" in m:
                epochs_out.append({"epoch": m["epoch"], "test_accuracy": m["test_accuracy"], "wall_time": m["wall_time"]})
    return {"samples_per_s": rate, "epochs": epochs_out, "job_wall": wall, "job_rss_mb": rss}


def run_torch(model, epochs, torch_threads, openblas_threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(openblas_threads))
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), "--model", model,
           "--epochs", str(epochs), "--torch-threads", str(torch_threads)]
    out, wall, rss = timed(cmd, env)
    r = json.loads(out)
    r["job_wall"], r["job_rss_mb"] = wall, rss
    return r


def time_to(result, target):
    for e in result["epochs"]:
        if e["test_accuracy"] >= target:
            return e["wall_time"], e["epoch"]
    return None, None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--epochs", type=int, default=10, help="MLP epochs")
    parser.add_argument("--cnn-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--mlp-peer", default="1x2", help="PyTorch torch_threads x OPENBLAS_NUM_THREADS for the MLP")
    parser.add_argument("--cnn-peer", default="2x2", help="PyTorch config for the CNN")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera_bench_")
    print("machine: %d cores; OPENBLAS_CORETYPE=%s; tessera threads %d; PyTorch MLP %s, CNN %s (torch threads x OpenBLAS threads)"
          % (os.cpu_count(), os.environ.get("OPENBLAS_CORETYPE", "unset"), args.threads, args.mlp_peer, args.cnn_peer))
    for model, epochs, peer in (("mlp", args.epochs, args.mlp_peer), ("cnn", args.cnn_epochs, args.cnn_peer)):
        tt, ob = (int(x) for x in peer.split("x"))
        mine = run_tessera(args.build, model, epochs, args.threads, os.path.join(tmp, model))
        theirs = run_torch(model, epochs, tt, ob)
        one_mine = run_tessera(args.build, model, 1, args.threads, os.path.join(tmp, model + "1"))
        one_theirs = run_torch(model, 1, tt, ob)
        print("\n%s, %d epochs, batch 128" % (model.upper(), epochs))
        print("  %-34s %12s %12s %8s" % ("", "tessera", "PyTorch", "ratio"))
        print("  %-34s %12.0f %12.0f %7.2fx" % ("training samples/s", mine["samples_per_s"], theirs["samples_per_s"],
                                               mine["samples_per_s"] / theirs["samples_per_s"]))
        print("  %-34s %11.2f%% %11.2f%%" % ("final test accuracy", 100 * mine["epochs"][-1]["test_accuracy"],
                                              100 * theirs["epochs"][-1]["test_accuracy"]))
        for target in (0.88,) if model == "mlp" else (0.88, 0.91):
            tm, em = time_to(mine, target)
            tt_, et = time_to(theirs, target)
            fmt = lambda t, e: "%.1f s (ep %d)" % (t, e) if t is not None else "not reached"
            print("  %-34s %12s %12s" % ("time to %.0f%% test accuracy" % (100 * target), fmt(tm, em), fmt(tt_, et)))
        print("  %-34s %11.2fs %11.2fs %7.2fx" % ("1-epoch job wall time", one_mine["job_wall"], one_theirs["job_wall"],
                                               one_mine["job_wall"] / one_theirs["job_wall"]))
        print("  %-34s %10.0fMB %10.0fMB %7.2fx" % ("1-epoch job peak RSS", one_mine["job_rss_mb"], one_theirs["job_rss_mb"],
                                               one_mine["job_rss_mb"] / one_theirs["job_rss_mb"]))
        print("  per-epoch test accuracy, tessera: %s" % " ".join("%.2f" % (100 * e["test_accuracy"]) for e in mine["epochs"]))
        print("  per-epoch test accuracy, PyTorch: %s" % " ".join("%.2f" % (100 * e["test_accuracy"]) for e in theirs["epochs"]))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
