#!/usr/bin/env python3
"""Recovery from memory against recovery from storage, for the Fashion-MNIST MLP and the character
transformer of examples/: an elastic job of 2 workers whose rank 1 is SIGKILLed at seeded random
steps of the checkpoint interval after a base step, one in each of --runs equal parts of it (the
same steps for both ways),
run with memory copies (train.memory_copy_every = K) and without (0: every worker starts again
from the newest checkpoint), both with a checkpoint every C steps written in the background.

Three shapes: "shrink" (--nproc 1:2: the survivor goes on alone), "replace" (--nproc 2: a new
worker takes the dead one's place) and "spare" (--nproc 2 --spares 1: a spare started ahead takes
it; memory copies only, against storage's "replace"). For each: time to resume (from the fault's line to the
survivor's "resumed from" line, both stamped as they reach the agent's stderr), steps lost (the
agent's report), and recovery (time to resume plus the lost steps trained again at the run's own
step time). The stall that keeping the copies costs: the metrics' memory_copy_seconds per step of
an uninterrupted run. Median of --runs runs.

K is per model (--every): a copy costs about the same time whatever the model's step time, so a
model of short steps copies less often; the defaults keep the stall near 1-2% of training.

Usage: bench/run_recovery.py [--runs 3] [--build build/release] [--every K] [--checkpoint-every C]
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {  # name: (config, extra settings, base step of the faults)
    "mlp": ("examples/fashion_mnist_mlp.toml",
            ["train.epochs=1", "data.batch_size=120", "train.log_every=25"], 300),
    "transformer": ("examples/char_transformer.toml",
                    ["train.max_steps=300", "train.epochs=100", "data.batch_size=32", "train.log_every=25"], 200),
}


def run_job(build, config, sets, nproc, fault_step, run_dir):
    """One elastic job; returns (stderr lines with arrival times, exit code)."""
    args = [os.path.join(build, "tessera"), "train", os.path.join(ROOT, config), "--nproc",
            *nproc.split(), "--max-restarts", "2", "--set", f'train.run_dir="{run_dir}"']
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ, TESSERA_JOB_TOKEN="recovery0123456789abcdef",
               TESSERA_FAULTS=f"sigkill:rank=1:step={fault_step}" if fault_step else "")
    if not fault_step:
        del env["TESSERA_FAULTS"]
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(
        (time.monotonic(), l.rstrip("\n").split("\r")[-1]) for l in p.stderr))
    reader.start()
    code = p.wait(600)
    reader.join()
    return lines, code


def first(lines, pattern):
    for t, line in lines:
        m = re.search(pattern, line)
        if m:
            return t, m
    return None, None


def step_seconds(run_dir):
    """Seconds per step (the median over the logged windows of the first round: each round's
    wall_time starts again at 0, and epoch ends add an evaluation) and memory-copy seconds per
    step (of the last round)."""
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"lr"' in l]
    slopes = []
    for a, b in zip(rows, rows[1:]):
        if b["wall_time"] < a["wall_time"]:
            break
        slopes.append((b["wall_time"] - a["wall_time"]) / (b["step"] - a["step"]))
    last = rows[-1]
    return statistics.median(slopes), last.get("memory_copy_seconds", 0.0) / last["step"]


def fault_steps(model, checkpoint_every, runs, seed):
    """A seeded random step in each of `runs` equal parts of the checkpoint interval after the
    model's base step. Faults come at any moment, so the steps storage loses are spread over the
    whole interval: drawn one per part, the median run is a fault near the interval's middle, as a
    typical one is, instead of wherever a few free draws happened to fall."""
    base = MODELS[model][2]
    rng = random.Random(seed)
    width = (checkpoint_every - 1) / runs
    return [base + 1 + int((i + rng.random()) * width) for i in range(runs)]


def measure(build, model, every, checkpoint_every, nproc, faults, tmp):
    config, sets, _ = MODELS[model]
    sets = sets + [f"train.memory_copy_every={every}", f"train.checkpoint_every={checkpoint_every}"]
    out = {"resume": [], "lost": [], "recovery": []}
    for i, fault in enumerate(faults):
        run_dir = os.path.join(tmp, f"{model}-{every}-{nproc}-{i}")
        lines, code = run_job(build, config, sets, nproc, fault, run_dir)
        if code != 0:
            sys.exit(f"{model} K={every} --nproc {nproc}: exit {code}\n" +
                     "\n".join(l for _, l in lines[-20:]))
        t_fault, _ = first(lines, r"fault injected")
        t_resumed, _ = first(lines, r"\[rank 0\] resumed from")
        _, lost = first(lines, r"(\d+) step\(s\) lost")
        per_step, _ = step_seconds(run_dir)
        resume = t_resumed - t_fault
        out["resume"].append(resume)
        out["lost"].append(int(lost.group(1)))
        out["recovery"].append(resume + int(lost.group(1)) * per_step)
    return {k: statistics.median(v) for k, v in out.items()}


def stall(build, model, every, tmp):
    config, sets, _ = MODELS[model]
    run_dir = os.path.join(tmp, f"{model}-stall-{every}")
    lines, code = run_job(build, config, sets + [f"train.memory_copy_every={every}"], "2", 0,
                          run_dir)
    if code != 0:
        sys.exit(f"{model}: uninterrupted run exit {code}")
    per_step, copy_per_step = step_seconds(run_dir)
    return per_step, copy_per_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=bench_env.HelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    ap.add_argument("--every", default="mlp=25,transformer=2",
                    help="memory copy interval K (steps) of each model")
    ap.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint interval C")
    ap.add_argument("--seed", type=int, default=1, help="seeds the steps of the faults")
    ap.add_argument("--models", default=",".join(MODELS), help="which models, comma-separated")
    ap.add_argument("--shapes", default="shrink,replace,spare", help="which shapes, comma-separated")
    a = ap.parse_args()
    models = a.models.split(",")
    shapes = a.shapes.split(",")
    every = {m: int(k) for m, k in (item.split("=") for item in a.every.split(","))}
    print(bench_env.header("tessera's own recovery from storage (no outside peer does both)"))
    print(f"memory copies every K steps ({a.every}); checkpoints every {a.checkpoint_every} steps "
          f"(background writes); 2 workers; rank 1 SIGKILLed; median of {a.runs} runs")
    print("| model | shape | from | time to resume s | steps lost | recovery s | memory/disk |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            faults = fault_steps(model, a.checkpoint_every, a.runs, a.seed)
            print(f"| {model} | faults at steps {', '.join(map(str, faults))} | | | | | |")
            for shape, nproc in (("shrink", "1:2"), ("replace", "2"), ("spare", "2 --spares 1")):
                if shape not in shapes:
                    continue
                mem = measure(a.build, model, every[model], a.checkpoint_every, nproc, faults, tmp)
                # A spare needs memory copies: storage's way is "replace"'s, measured once.
                if shape != "spare" or "replace" not in shapes:
                    disk = measure(a.build, model, 0, a.checkpoint_every,
                                   "2" if shape == "spare" else nproc, faults, tmp)
                rows = (("memory", mem),) if shape == "spare" else (("memory", mem), ("disk", disk))
                for name, r in rows:
                    ratio = f"{disk['recovery'] / mem['recovery']:.1f}x faster" \
                        if name == "memory" else ""
                    print(f"| {model} | {shape} | {name} | {r['resume']:.3f} | {r['lost']} | "
                          f"{r['recovery']:.3f} | {ratio} |", flush=True)
        for model in models:
            per_step, copy = stall(a.build, model, every[model], tmp)
            print(f"{model}: step {1e3 * per_step:.2f} ms; keeping the copies stalls "
                  f"{1e3 * copy:.3f} ms a step ({100 * copy / per_step:.1f}%)")
    print(bench_env.footer())


if __name__ == "__main__":
    main()
