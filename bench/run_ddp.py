"""Data-parallel benchmark: tessera DDP (`tessera train --nproc 2`) beside PyTorch DDP (gloo, CPU,
bench/torch_ddp.py) on the MLP and CNN of examples/, 2 processes with 1 thread each,
OPENBLAS_NUM_THREADS=1, the same per-rank batch; and tessera in one process with 2 threads.

Prints global samples/s and ratios, and from tessera's metrics the per-step time split (forward,
backward, communication wait, optimizer) and the fraction of communication hidden under backward.

Usage: /usr/bin/python3 bench/run_ddp.py [--build build/release] [--steps 200]
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


def tessera(build, model, nproc, threads, steps, run_dir):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TESSERA_NUM_THREADS=str(threads))
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [os.path.join(build, "tessera"), "train", os.path.join(ROOT, "examples", "fashion_mnist_%s.toml" % model),
           "--quiet", "--set", "train.max_steps=%d" % steps, "--set", 'data.test=""',
           "--set", "train.log_every=10", "--set", 'train.run_dir="%s"' % run_dir,
           "--set", 'parallel.strategy="%s"' % ("ddp" if nproc > 1 else "none"),
           # data.batch_size is the global batch: 128 per process, as PyTorch's per-rank batch.
           "--set", "data.batch_size=%d" % (128 * nproc)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("tessera failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"forward_ms"' in l]
    lines = lines[1:] or lines  # the first window includes warm-up
    mean = lambda k: sum(l.get(k, 0.0) for l in lines) / len(lines)
    return {"samples_per_s": mean("samples_per_s"), "forward_ms": mean("forward_ms"),
            "backward_ms": mean("backward_ms"), "comm_wait_ms": mean("comm_wait_ms"),
            "optimizer_ms": mean("optimizer_ms"), "hidden": mean("comm_hidden_fraction"),
            "bytes": mean("bytes_communicated_per_step")}


def torch_ddp(model, nproc, steps):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_ddp.py"), "--model", model,
                        "--nproc", str(nproc), "--steps", str(steps)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("PyTorch DDP failed:\n" + r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cnn-steps", type=int, default=60)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera_ddp_")
    print("machine: %d cores; OPENBLAS_CORETYPE=%s; 2 processes x 1 thread, OPENBLAS_NUM_THREADS=1, "
          "per-rank batch 128; tessera 1-process baseline: 2 threads" % (os.cpu_count(), os.environ.get("OPENBLAS_CORETYPE", "unset")))
    for model, steps in (("mlp", args.steps), ("cnn", args.cnn_steps)):
        t2 = tessera(args.build, model, 2, 1, steps, os.path.join(tmp, model + "2"))
        t1 = tessera(args.build, model, 1, 2, steps, os.path.join(tmp, model + "1"))
        p2 = torch_ddp(model, 2, steps)
        step_ms = t2["forward_ms"] + t2["backward_ms"] + t2["comm_wait_ms"] + t2["optimizer_ms"]
        print("\n%s" % model.upper())
        print("  tessera DDP, 2 ranks        %10.0f samples/s" % t2["samples_per_s"])
        print("  PyTorch DDP (gloo), 2 ranks %10.0f samples/s   tessera/PyTorch %.2fx" % (p2["samples_per_s"], t2["samples_per_s"] / p2["samples_per_s"]))
        print("  tessera, 1 process x 2 thr  %10.0f samples/s   2 ranks / 1 process %.2fx" % (t1["samples_per_s"], t2["samples_per_s"] / t1["samples_per_s"]))
        print("  tessera step split (ms):    forward %.2f, backward %.2f, comm wait %.2f (%.1f%% of step), optimizer %.2f"
              % (t2["forward_ms"], t2["backward_ms"], t2["comm_wait_ms"], 100 * t2["comm_wait_ms"] / step_ms, t2["optimizer_ms"]))
        print("  tessera gradient bytes/step %.2f MB; communication hidden under backward: %.0f%%" % (t2["bytes"] / 1e6, 100 * t2["hidden"]))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
