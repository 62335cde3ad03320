#!/usr/bin/env bash
# Builds ps-lite from a checkout (it is not a Debian package; needs libzmq3-dev, libprotobuf-dev
# and protobuf-compiler) outside the source tree, then runs bench/pslite_bench.cc's cases with
# 1 scheduler, 1 server and 1 worker on loopback, a few times, with the server keeping a store and
# applying SGD (as tessera's do) and then with ps-lite's own benchmark handler (no store), and
# prints the medians in the
# units of bench/ps_bench (dense: MB/s of 2 * size per round; sparse: keys/s), next to tessera's
# own run of the same cases (build/release/bench/ps_bench --configs 1x1).
#   bench/run_pslite.sh PATH/TO/ps-lite [RUNS]
set -euo pipefail
src=$(cd "${1:?usage: bench/run_pslite.sh PATH/TO/ps-lite [RUNS]}" && pwd)
runs=${2:-3}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=build/pslite
mkdir -p "$out"
if [[ ! -f $out/lib/libpslite.a ]]; then
  cmake -S "$src" -B "$out/lib" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1
  cmake --build "$out/lib" --target pslite -j 2 >"$out/build.log" 2>&1
fi
proto_dir=$(dirname "$(find "$out/lib" -name meta.pb.h | head -n1)")
c++ -O3 -std=c++17 -I"$src/include" -I"$proto_dir" bench/pslite_bench.cc "$out/lib/libpslite.a" \
  -lzmq -lprotobuf -lpthread -o "$out/pslite_bench"

export DMLC_NUM_SERVER=1 DMLC_NUM_WORKER=1 DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=${PSLITE_PORT:-8765}
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for handler in store empty; do
  for ((r = 1; r <= runs; ++r)); do
    export PSLITE_BENCH_HANDLER=$handler
    DMLC_ROLE=scheduler "$out/pslite_bench" &
    scheduler=$!
    DMLC_ROLE=server "$out/pslite_bench" &
    server=$!
    DMLC_ROLE=worker timeout 300 "$out/pslite_bench" | sed "s/^/$handler $r /"
    wait $scheduler $server
  done
done | tee "$out/results.txt"
/usr/bin/python3 - "$out/results.txt" <<'PY'
import collections, statistics, sys
cases = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 7 and f[2] == "pslite":
        cases[(f[0], f[3], int(f[4]))].append(float(f[6]))
for (handler, kind, size), times in sorted(cases.items()):
    t = statistics.median(times)
    rate = "%.0f MB/s" % (2 * size / t / 1e6) if kind == "dense" else "%.2f M keys/s" % (size / t / 1e6)
    print("ps-lite, %-5s handler, %-6s %9d: %s (median of %d runs, round %.3f ms)"
          % (handler, kind, size, rate, len(times), t * 1e3))
PY
