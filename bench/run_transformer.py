"""The transformer benchmark (issue 12): tessera (`tessera train examples/char_transformer.toml`)
beside PyTorch (bench/torch_transformer.py, Debian's python3-torch) training the same GPT-style
character model on the same text, windows, batch and optimizer, one process each.

PyTorch runs at its best thread setting: a sweep first trains --sweep-steps steps under each
(torch threads x OPENBLAS_NUM_THREADS) pair in --peer-configs, --runs times in turns, and the pair
with the best median tokens/s runs the comparison. tessera runs with TESSERA_NUM_THREADS =
--threads (default: all cores). Then --runs runs of one epoch each, the two engines in turns.

Prints training tokens/s (over the training steps only, both engines) and the test loss after the
epoch (nats per character on the last 10% of the file), medians with the range (min-max), and
tessera's ratio; the peer health check (bench/bench_env.py) runs at the winning config, and an
unhealthy peer marks the ratio INVALID (exit status 3).

Usage: bench/run_transformer.sh [--runs 5] [--threads N]
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
CONFIG = os.path.join(ROOT, "examples", "char_transformer.toml")
SEQ_LEN = 64  # the example's data.seq_len, which torch_transformer.py defaults to as well


def run_tessera(build, threads, run_dir, epochs=1):
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [os.path.join(build, "tessera"), "train", CONFIG, "--quiet",
           "--set", "train.epochs=%d" % epochs, "--set", 'train.run_dir="%s"' % run_dir]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("tessera failed: %s\n%s" % (" ".join(cmd), (r.stdout + r.stderr)[-3000:]))
    rate = float(re.search(r"\(([\d.]+) samples/s\)", r.stdout).group(1))
    loss = float(re.search(r"test loss ([\d.]+)", r.stdout).group(1))
    return {"tokens_per_s": rate * SEQ_LEN, "test_loss": loss}


def run_torch(config, max_steps=0):
    tt, ob = config
    cmd = [bench_env.TORCH_PYTHON, os.path.join(HERE, "torch_transformer.py"),
           "--torch-threads", str(tt), "--max-steps", str(max_steps)]
    r = subprocess.run(cmd, env=bench_env.peer_env(ob), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("PyTorch failed: %s\n%s" % (" ".join(cmd), r.stderr[-3000:]))
    return json.loads(r.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=bench_env.HelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--runs", type=int, default=5, help="runs of each engine")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="TESSERA_NUM_THREADS for tessera; the default is all cores")
    parser.add_argument("--peer-configs", default="1x1,1x2,2x1,2x2",
                        help="torch threads x OPENBLAS_NUM_THREADS pairs PyTorch's sweep tries")
    parser.add_argument("--sweep-steps", type=int, default=40, help="steps per sweep run")
    args = parser.parse_args()
    if not os.path.exists("/usr/share/games/fortunes/computers"):
        sys.exit("needs Debian's fortunes package (apt install fortunes)")
    configs = bench_env.parse_configs(args.peer_configs)
    print(bench_env.header("%s at the best of torch threads x OpenBLAS threads %s; tessera "
                           "threads %d" % (bench_env.torch_version(), args.peer_configs,
                                           args.threads)))
    rates = {cfg: [] for cfg in configs}
    for _ in range(args.runs):
        for cfg in configs:
            rates[cfg].append(run_torch(cfg, args.sweep_steps)["tokens_per_s"])
    stats = {cfg: Stat(r) for cfg, r in rates.items()}
    best = max(configs, key=lambda cfg: stats[cfg].median)
    print("# PyTorch thread sweep, tokens/s over %d steps: %s; best %s"
          % (args.sweep_steps, ", ".join("%s %s" % (bench_env.config_name(*cfg),
                                                    stats[cfg].fmt("%.0f")) for cfg in configs),
             bench_env.config_name(*best)))
    tmp = tempfile.mkdtemp(prefix="tessera_bench_")
    mine, theirs = [], []
    for i in range(args.runs):
        mine.append(run_tessera(args.build, args.threads, os.path.join(tmp, "run")))
        theirs.append(run_torch(best))
        print("# run %d/%d done" % (i + 1, args.runs), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    healthy = bench_env.peer_health([best])
    a, b = (Stat(r["tokens_per_s"] for r in runs) for runs in (mine, theirs))
    la, lb = (Stat(r["test_loss"] for r in runs) for runs in (mine, theirs))
    print("\nexamples/char_transformer.toml (2 blocks, width 128, 4 heads, seq_len 64, batch 32), "
          "one epoch; PyTorch at %s; median (min-max) of %d runs" % (bench_env.config_name(*best),
                                                                   args.runs))
    print("  %-24s %-28s %-28s %s" % ("", "tessera", "PyTorch", "ratio"))
    print("  %-24s %-28s %-28s %.2fx%s" % ("training tokens/s", a.fmt("%.0f"), b.fmt("%.0f"),
                                           a.median / b.median, "" if healthy else "  INVALID"))
    print("  %-24s %-28s %s" % ("test loss (nats/char)", la.fmt("%.3f"), lb.fmt("%.3f")))
    print(bench_env.footer())
    if not healthy:
        sys.exit(3)


if __name__ == "__main__":
    main()
