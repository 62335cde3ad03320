"""Shared by bench/run_*.py: the machine and environment header, medians with their spread, and
the peer health check.

Health check: a ratio against PyTorch means something only if PyTorch runs as fast as this machine
allows. PyTorch's matmul runs on OpenBLAS here, so for each thread setting (torch threads x
OPENBLAS_NUM_THREADS) a benchmark's PyTorch figures come from, a 512x512x512 float32 product is
timed both through torch.matmul and as a raw cblas_sgemm call into libopenblas (a fresh process
without torch, same environment), alternating. The peer is unhealthy when torch.matmul runs below
half of raw OpenBLAS: then the benchmark's ratios are invalid.

As a script (works with any python3; `check` needs /usr/bin/python3 for torch):
  python3 bench/bench_env.py                 # the header
  python3 bench/bench_env.py check 1x2,2x1   # the health check at these settings
  python3 bench/bench_env.py matmul openblas|torch [--torch-threads N]   # one rate, as JSON
"""
import argparse
import array
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time

TORCH_PYTHON = "/usr/bin/python3"  # Debian's python3-torch is installed for this interpreter
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TESSERA_NUM_THREADS")  # always printed; other set variables with these prefixes too:
ENV_PREFIXES = ("OPENBLAS_", "GOTO", "OMP_", "GOMP_", "KMP_", "MKL_", "DNNL_", "ONEDNN_", "TORCH_",
                "TESSERA_")
HEALTHY_FRACTION = 0.5
MATMUL_N = 512
START = time.monotonic()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def openblas():
    """Handle on the libopenblas that Debian's libblas.so.3 (so numpy and PyTorch) forwards to."""
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_config.restype = ctypes.c_char_p
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def torch_version():
    from importlib import metadata
    try:
        return "PyTorch " + metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "PyTorch not installed for %s" % sys.executable


def header(peer):
    """Lines (each starting with '# ') naming the machine, the environment and the peer."""
    names = list(ENV_VARS) + sorted(v for v in os.environ
                                    if v.startswith(ENV_PREFIXES) and v not in ENV_VARS)
    env = " ".join("%s=%s" % (v, os.environ.get(v, "unset")) for v in names)
    try:
        lib = openblas()
        blas = "%s (kernels: %s)" % (lib.openblas_get_config().decode().split(" NO_")[0],
                                     lib.openblas_get_corename().decode())
    except OSError as e:
        blas = "OpenBLAS not loadable: %s" % e
    lines = ["machine: %s, %d cores, %.1f GiB, %s %s; load average %.2f at start"
             % (cpu_model(), os.cpu_count(), memory_gib(), platform.system(), platform.release(),
                os.getloadavg()[0]),
             "environment: " + env, blas, "peer: " + peer]
    return "\n".join("# " + line for line in lines)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's lines and shows each option's default."""


class Stat:
    """Median of repeated measurements, with their minimum and maximum."""

    def __init__(self, values):
        self.values = list(values)
        self.median = statistics.median(self.values)
        self.lo, self.hi = min(self.values), max(self.values)

    def fmt(self, spec="%.4g", unit=""):
        """'12.3 (11.9-12.8)'; unit follows the median: '1.14x (1.02-1.20)'."""
        text = spec % self.median + unit
        if len(self.values) > 1:
            text += " (%s-%s)" % (spec % self.lo, spec % self.hi)
        return text


def footer():
    seconds = time.monotonic() - START
    return "# wall time %dm%02ds, load average %.2f at the end" % (seconds // 60, seconds % 60,
                                                                  os.getloadavg()[0])


def parse_configs(text):
    """'1x2,2x1' -> [(1, 2), (2, 1)]: (torch threads, OPENBLAS_NUM_THREADS) pairs."""
    return [tuple(int(x) for x in cfg.split("x")) for cfg in text.split(",")]


def config_name(torch_threads, openblas_threads):
    return "%dx%d" % (torch_threads, openblas_threads)


def peer_env(openblas_threads):
    """The environment of a PyTorch run at this OpenBLAS setting."""
    return dict(os.environ, OPENBLAS_NUM_THREADS=str(openblas_threads))


def timeit(fn, repeats=5, batch_seconds=0.1):
    """Seconds per call of fn in each of `repeats` timed batches of at least batch_seconds, after
    a warm-up call."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > batch_seconds:
            break
        n *= 2
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return samples


def matmul_rate(engine, torch_threads):
    """GFLOP/s (median of timeit's repeats) of one NxNxN float32 product in this process."""
    n = MATMUL_N
    if engine == "torch":
        import torch
        torch.set_num_threads(torch_threads)
        a, b = torch.randn(n, n), torch.randn(n, n)
        seconds = timeit(lambda: torch.matmul(a, b))
    else:
        lib = openblas()
        a, b, c = (array.array("f", [0.5]) * (n * n) for _ in range(3))
        pa, pb, pc = (ctypes.c_void_p(x.buffer_info()[0]) for x in (a, b, c))
        one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
        row_major, no_trans = 101, 111  # CBLAS enum values
        seconds = timeit(lambda: lib.cblas_sgemm(row_major, no_trans, no_trans, n, n, n, one, pa,
                                                 n, pb, n, zero, pc, n))
    return 2.0 * n ** 3 / statistics.median(seconds) / 1e9


def measure(engine, torch_threads, openblas_threads):
    cmd = [TORCH_PYTHON, os.path.abspath(__file__), "matmul", engine,
           "--torch-threads", str(torch_threads)]
    out = subprocess.run(cmd, env=peer_env(openblas_threads), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["gflops"]


def peer_health(configs, rounds=3):
    """Runs the health check at each (torch threads, OPENBLAS_NUM_THREADS) pair and prints one line
    per pair; returns True when the peer is healthy at all of them."""
    healthy = True
    print("# peer health: torch.matmul vs raw OpenBLAS cblas_sgemm, %dx%dx%d float32, GFLOP/s, "
          "median (min-max) of %d alternating fresh processes each"
          % (MATMUL_N, MATMUL_N, MATMUL_N, rounds))
    for tt, ob in sorted(set(configs)):
        raw, peer = [], []
        for _ in range(rounds):
            raw.append(measure("openblas", tt, ob))
            peer.append(measure("torch", tt, ob))
        raw, peer = Stat(raw), Stat(peer)
        ok = peer.median >= HEALTHY_FRACTION * raw.median
        healthy = healthy and ok
        print("#   %s (torch threads x OpenBLAS threads): torch.matmul %s, raw OpenBLAS "
              "(%d threads) %s: %.2fx of raw, %s"
              % (config_name(tt, ob), peer.fmt("%.0f"), ob, raw.fmt("%.0f"),
                 peer.median / raw.median, "healthy" if ok else "UNHEALTHY"))
    if not healthy:
        print("# PEER UNHEALTHY: results invalid (PyTorch's matmul below %.0f%% of raw OpenBLAS at "
              "the same threads: the peer is broken here, its ratios mean nothing)"
              % (100 * HEALTHY_FRACTION))
    return healthy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="run the peer health check")
    check.add_argument("configs", help="torch threads x OPENBLAS_NUM_THREADS pairs, e.g. 1x2,2x1")
    check.add_argument("--rounds", type=int, default=3, help="alternating measurements of each")
    mm = sub.add_parser("matmul", help="print one matmul rate as JSON")
    mm.add_argument("engine", choices=["openblas", "torch"])
    mm.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    if args.command == "matmul":
        print(json.dumps({"gflops": matmul_rate(args.engine, args.torch_threads)}))
        return
    print(header(torch_version() if args.command else "none"))
    if args.command == "check" and not peer_health(parse_configs(args.configs), args.rounds):
        sys.exit(3)


if __name__ == "__main__":
    main()
