"""Data-parallel benchmark on the MLP and CNN of examples/, 2 processes x 1 thread,
OPENBLAS_NUM_THREADS=1, per-rank batch 128:
  tessera DDP (gloo)          `tessera train --nproc 2 --backend gloo`
  PyTorch DDP (gloo)          bench/torch_ddp.py: DistributedDataParallel, gloo backend (CPU)
  tessera DDP (shm, default)  `tessera train --nproc 2 --backend shm`, tessera's default on one host
  tessera, 1 process          `tessera train`, 2 threads, batch 128: the baseline without DDP

tessera (gloo) against PyTorch (gloo) is the like-for-like comparison: same transport, ranks,
threads and batch. shm against gloo is what tessera's shared-memory transport gives; PyTorch has
no such backend on CPU. Each round runs every variant once (in rotating order); figures are global
samples/s, medians over --runs rounds with the range (min-max) in brackets, and each ratio is the
median of the per-round ratios. From tessera's metrics: the per-step time split and the fraction
of communication hidden under backward. The peer health check (bench/bench_env.py) runs at 1x1;
an unhealthy peer marks the ratios INVALID and the script exits with status 3.

Usage: /usr/bin/python3 bench/run_ddp.py [--build build/release] [--runs 5] [--steps 200]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import bench_env
from bench_env import Stat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPLIT = ("forward_ms", "backward_ms", "comm_wait_ms", "optimizer_ms")


def tessera(build, model, steps, run_dir, nproc, threads, backend=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TESSERA_NUM_THREADS=str(threads))
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [os.path.join(build, "tessera"), "train",
           os.path.join(ROOT, "examples", "fashion_mnist_%s.toml" % model),
           "--quiet", "--set", "train.max_steps=%d" % steps, "--set", 'data.test=""',
           "--set", "train.log_every=10", "--set", 'train.run_dir="%s"' % run_dir,
           "--set", 'parallel.strategy="%s"' % ("ddp" if nproc > 1 else "none"),
           # data.batch_size is the global batch: 128 per process, as PyTorch's per-rank batch.
           "--set", "data.batch_size=%d" % (128 * nproc)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc), "--backend", backend]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("tessera failed: %s\n%s%s" % (" ".join(cmd), r.stdout[-2000:], r.stderr[-2000:]))
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        windows = [json.loads(line) for line in f if '"forward_ms"' in line]
    windows = windows[1:] or windows  # the first window includes warm-up
    return {k: sum(w.get(k, 0.0) for w in windows) / len(windows)
            for k in SPLIT + ("samples_per_s", "comm_hidden_fraction",
                              "bytes_communicated_per_step")}


def torch_ddp(model, steps):
    r = subprocess.run([bench_env.TORCH_PYTHON, os.path.join(HERE, "torch_ddp.py"),
                        "--model", model, "--nproc", "2", "--steps", str(steps)],
                       env=bench_env.peer_env(1), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("PyTorch DDP failed:\n" + r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=bench_env.HelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                        help="tessera's build directory")
    parser.add_argument("--runs", type=int, default=5, help="rounds of every variant")
    parser.add_argument("--steps", type=int, default=200, help="training steps of the MLP")
    parser.add_argument("--cnn-steps", type=int, default=60, help="training steps of the CNN")
    args = parser.parse_args()
    if min(args.steps, args.cnn_steps) < 20:
        parser.error("--steps and --cnn-steps must be at least 20: tessera's rate is read from "
                     "windows of 10 steps, and the first window (warm-up) is dropped")
    print(bench_env.header("%s DDP, gloo backend; 2 processes x 1 thread, OPENBLAS_NUM_THREADS=1, "
                           "per-rank batch 128; tessera 1-process baseline: 2 threads"
                           % bench_env.torch_version()))
    tmp = tempfile.mkdtemp(prefix="tessera_ddp_")
    variants = {  # name: (model, steps) -> result
        "tessera DDP (gloo)": lambda m, s: tessera(args.build, m, s, tmp + "/g", 2, 1, "gloo"),
        "PyTorch DDP (gloo)": torch_ddp,
        "tessera DDP (shm, default)": lambda m, s: tessera(args.build, m, s, tmp + "/s", 2, 1,
                                                           "shm"),
        "tessera 1 process x 2 threads": lambda m, s: tessera(args.build, m, s, tmp + "/1", 1, 2),
    }
    names = list(variants)
    results = {}
    for model, steps in (("mlp", args.steps), ("cnn", args.cnn_steps)):
        runs = {name: [] for name in names}
        for i in range(args.runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                runs[name].append(variants[name](model, steps))
            print("# %s: round %d/%d done" % (model, i + 1, args.runs), file=sys.stderr)
        results[model] = runs
    shutil.rmtree(tmp, ignore_errors=True)

    print()
    healthy = bench_env.peer_health([(1, 1)])
    for model, runs in results.items():
        rate = {name: [r["samples_per_s"] for r in rs] for name, rs in runs.items()}
        gloo, torch, shm, one = (rate[name] for name in names)

        def ratio(a, b):
            return Stat(x / y for x, y in zip(a, b)).fmt("%.2f", "x")

        steps = args.steps if model == "mlp" else args.cnn_steps
        print("\n%s, %d steps: global samples/s, median (min-max) of %d runs"
              % (model.upper(), steps, args.runs))
        for name in names:
            print("  %-31s %s" % (name, Stat(rate[name]).fmt("%.0f")))
        invalid = "" if healthy else "  INVALID"
        print("  tessera gloo / PyTorch gloo     %-22s like for like: same transport%s"
              % (ratio(gloo, torch), invalid))
        print("  tessera shm / tessera gloo      %-22s what the shared-memory transport gives"
              % ratio(shm, gloo))
        print("  tessera shm / PyTorch gloo      %-22s about the product of the two above%s"
              % (ratio(shm, torch), invalid))
        print("  tessera shm / 1 process         %-22s 2 ranks against 1 process of 2 threads"
              % ratio(shm, one))
        for name, backend in (names[0], "gloo"), (names[2], "shm"):
            m = {k: Stat(r[k] for r in runs[name]).median for k in runs[name][0]}
            print("  %s step, ms (medians): forward %.2f, backward %.2f, comm wait %.2f (%.0f%% of "
                  "step), optimizer %.2f; %.0f%% of communication hidden under backward; "
                  "%.2f MB of gradients" % (
                      backend, m["forward_ms"], m["backward_ms"],
                      m["comm_wait_ms"], 100 * m["comm_wait_ms"] / sum(m[k] for k in SPLIT),
                      m["optimizer_ms"], 100 * m["comm_hidden_fraction"],
                      m["bytes_communicated_per_step"] / 1e6))
    print("\nThe like-for-like ratio is tessera gloo / PyTorch gloo: both over Gloo's TCP "
          "transport with the same ranks, threads and batch. shm / gloo is the transport alone.")
    if not healthy:
        print("PEER UNHEALTHY: results invalid")
    print(bench_env.footer())
    if not healthy:
        sys.exit(3)


if __name__ == "__main__":
    main()
