"""Model parallelism measured (issue 12): the pipeline's idle bubble and the first stage's
activation memory, and the transformer of examples/char_transformer_pipeline.toml trained whole
and split every way. No peer: these are tessera's figures beside its own one-process run and the
theory.

1. bench/pipeline_bench under `tessera launch --nproc K` for each K in --stages: equal stages
   (blocks of Linear + GELU), GPipe and 1F1B, M = --micro-batches; each stage's idle fraction
   (time not computing over wall time, medians of --runs runs) beside (K-1)/(M+K-1), and the first
   stage's activation memory at a fixed micro-batch size (GPipe's grows with M, 1F1B's stays).
   With more stages than cores the stages share cores and their compute slows while others run,
   so the idle fractions of K above the core count measure the machine, not the schedule.
2. The example trained --steps steps on one process (strategy none, all cores) and on processes
   of one thread each: as a pipeline of two stages (1F1B, GPipe, 1F1B with recompute), split by
   tensor parallelism over two, fully sharded over two (ZeRO-3), and as meshes (dp x pp, and
   dp x pp x tp on 8 processes): training tokens/s (medians of
   --runs), the test loss after the steps, and each rank's parameter and peak tensor bytes.

Usage: bench/run_model_parallel.sh [--runs 3] [--steps 100] [--stages 2,4] [--variants all]
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
CONFIG = os.path.join(ROOT, "examples", "char_transformer_pipeline.toml")
SEQ_LEN = 64  # the example's data.seq_len

VARIANTS = [  # name, processes, overrides
    ("one process", 1, ['parallel.strategy="none"', "train.threads=0"]),
    ("pp=2 1f1b", 2, []),
    ("pp=2 gpipe", 2, ['parallel.schedule="gpipe"']),
    ("pp=2 1f1b recompute", 2, ["parallel.recompute=true"]),
    ("tp=2", 2, ['parallel.strategy="tensor"']),
    ("zero3 on 2", 2, ['parallel.strategy="zero"', "parallel.zero_stage=3"]),
    ("dp=2 x pp=2", 4, ['parallel.strategy="hybrid"', "parallel.pp=2"]),
    ("dp=2 x pp=2 x tp=2", 8, ['parallel.strategy="hybrid"', "parallel.pp=2", "parallel.tp=2"]),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), (r.stdout + r.stderr)[-3000:]))
    return r.stdout + r.stderr


def bubble(build, stages, runs, micro_batches):
    out = run([os.path.join(build, "tessera"), "launch", "--nproc", str(stages),
               os.path.join(build, "bench", "pipeline_bench"), "--runs", str(runs),
               "--micro-batches", micro_batches])
    for line in out.splitlines():
        if line.startswith("[rank 0] "):
            print(line[len("[rank 0] "):])


def train(build, variant, steps, run_dir):
    name, nproc, overrides = variant
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [os.path.join(build, "tessera"), "train", CONFIG, "--nproc", str(nproc),
           "--set", "train.max_steps=%d" % steps, "--set", 'train.run_dir="%s"' % run_dir,
           "--set", "train.log_every=%d" % steps]
    for o in overrides:
        cmd += ["--set", o]
    out = run(cmd)
    rate = float(re.search(r"\(([\d.]+) samples/s\)", out).group(1))
    loss = float(re.search(r"test loss ([\d.]+)", out).group(1))
    peaks, params = [], []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "peak_tensor_bytes" in record:
                peaks, params = record["peak_tensor_bytes"], record["parameter_bytes"]
    return rate * SEQ_LEN, loss, peaks, params


def mib(values):
    return ", ".join("%.2f" % (v / 2**20) for v in values)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=bench_env.HelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--runs", type=int, default=3, help="runs of each case; medians shown")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the example")
    parser.add_argument("--stages", default="2,4", help="values of K for the bubble")
    parser.add_argument("--micro-batches", default="1,4,8,16", help="values of M")
    parser.add_argument("--variants", default="all",
                        help="comma-separated runs of the example (%s), or all"
                        % ", ".join(v[0] for v in VARIANTS))
    args = parser.parse_args()
    variants = VARIANTS if args.variants == "all" else [
        v for v in VARIANTS if v[0] in args.variants.split(",") or v[0] == "one process"]
    print(bench_env.header("none (the theory, and tessera on one process)"))
    for k in filter(None, args.stages.split(",")):
        bubble(args.build, int(k), args.runs, args.micro_batches)
        print()
    print("# examples/char_transformer_pipeline.toml, %d steps of 32 windows of %d tokens"
          % (args.steps, SEQ_LEN))
    print("| run | tokens/s | / one process | test loss | parameter MiB per rank "
          "| peak tensor MiB per rank |")
    print("| --- | --- | --- | --- | --- | --- |")
    work = tempfile.mkdtemp(prefix="tessera_pipeline_bench_")
    try:
        results = {v[0]: [] for v in variants}
        for _ in range(args.runs):
            for v in variants:  # in turns, so that a slow spell of the machine hits all alike
                results[v[0]].append(train(args.build, v, args.steps, os.path.join(work, "run")))
        base = Stat(r[0] for r in results[variants[0][0]])
        for name, _, _ in variants:
            rates = Stat(r[0] for r in results[name])
            loss = Stat(r[1] for r in results[name])
            last = results[name][-1]
            print("| %s | %s | %.2f | %s | %s | %s |" % (name, rates.fmt("%.0f"),
                                                         rates.median / base.median,
                                                         loss.fmt("%.4f"), mib(last[3]),
                                                         mib(last[2])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(bench_env.footer())


if __name__ == "__main__":
    main()
