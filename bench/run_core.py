"""Core benchmark: tessera (bench/core_bench, Google Benchmark) beside PyTorch (bench/torch_core.py,
Debian's python3-torch) in one run, on the same machine, environment and thread counts.

PyTorch is configured at its best: it runs under each (torch threads, OPENBLAS_NUM_THREADS) pair
in --peer-configs and the best rate of each benchmark is kept (oversubscribed threads cost it 5x
on 2 cores). tessera runs with TESSERA_NUM_THREADS = --threads (default: all cores).
Figures are medians of --repetitions runs.

Usage: /usr/bin/python3 bench/run_core.py [--build build/release] [--repetitions 5]
"""
import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_tessera(build, threads, repetitions):
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    out = subprocess.run(
        [os.path.join(build, "bench", "core_bench"), "--benchmark_format=json",
         "--benchmark_repetitions=%d" % repetitions, "--benchmark_report_aggregates_only=true"],
        env=env, check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"]] = b
    return medians


def run_torch(torch_threads, openblas_threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(openblas_threads))
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_core.py"),
                          "--torch-threads", str(torch_threads)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--peer-configs", default="1x2,2x1,2x2",
                        help="torch_threads x OPENBLAS_NUM_THREADS pairs for PyTorch")
    args = parser.parse_args()

    if not os.path.exists(os.path.join(args.build, "bench", "core_bench")):
        sys.exit("core_bench not built in %s: run `make build` first" % args.build)

    print("machine: %s, %d cores; OPENBLAS_CORETYPE=%s; tessera threads %d"
          % (cpu_name(), os.cpu_count(), os.environ.get("OPENBLAS_CORETYPE", "unset"), args.threads))
    t = run_tessera(args.build, args.threads, args.repetitions)
    peers = []
    for cfg in args.peer_configs.split(","):
        tt, ob = (int(x) for x in cfg.split("x"))
        peers.append(run_torch(tt, ob))
    print("PyTorch %s, best of configs %s (torch threads x OpenBLAS threads)"
          % (peers[0]["torch"], args.peer_configs))

    def best(key):
        p = max(peers, key=lambda r: r[key])
        return p[key], "%dx%s" % (p["torch_threads"], p["openblas_threads"])

    rows = []
    for shape in ("128/784/512", "512/512/512"):
        mine = t["BM_Matmul/%s/real_time" % shape]["GFLOPS"] / 1e9
        raw = t["BM_RawSgemm/%s/real_time" % shape]["GFLOPS"] / 1e9
        openblas = t["BM_RawOpenblasSgemm/%s/real_time" % shape]["GFLOPS"] / 1e9
        peer, cfg = best("matmul_%s_gflops" % shape.replace("/", "x"))
        rows.append(("matmul %s GFLOP/s" % shape.replace("/", "x"), mine, peer, cfg))
        rows.append(("  raw oneDNN sgemm (tessera's roofline)", raw, None, None))
        rows.append(("  raw OpenBLAS sgemm", openblas, None, None))
        rows.append(("  tessera matmul / raw oneDNN sgemm", mine / raw, None, None))
    conv = t["BM_Conv2dStep/real_time"]["samples/s"]
    peer, cfg = best("conv2d_step_samples_per_s")
    rows.append(("conv2d fwd+bwd samples/s (128x32x14x14, 64 5x5)", conv, peer, cfg))
    mlp = t["BM_MlpStep/real_time"]["samples/s"]
    roof = t["BM_MlpStepGemms/real_time"]["samples/s"]
    peer, cfg = best("mlp_step_samples_per_s")
    rows.append(("MLP step samples/s (784-512-256-10, b128, SGD mom.)", mlp, peer, cfg))
    rows.append(("  sgemm roofline samples/s (the step's 8 GEMMs alone)", roof, None, None))
    rows.append(("  MLP step / roofline", mlp / roof, None, None))

    print()
    print("%-56s %12s %12s %8s  %s" % ("benchmark", "tessera", "PyTorch", "ratio", "peer cfg"))
    for name, mine, peer, cfg in rows:
        if peer is None:
            print("%-56s %12.3g" % (name, mine))
        else:
            print("%-56s %12.4g %12.4g %7.2fx  %s" % (name, mine, peer, mine / peer, cfg))


if __name__ == "__main__":
    main()
