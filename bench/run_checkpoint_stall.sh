#!/usr/bin/env bash
# How long training stands still for checkpoints, written in place (train.async_checkpoint =
# false) and by a background thread (true): the Fashion-MNIST MLP of examples/ with SGD and
# momentum, 2 epochs, a checkpoint every 20 steps, read from the metrics' checkpoint_seconds (time
# spent in save_checkpoint: the snapshot in memory, plus the write when it is not in the
# background). Median of --runs runs (default 3) of each, measured in the same run.
#
# Usage: bench/run_checkpoint_stall.sh [--runs N] [BUILD_DIR]   (default build/release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs_n=3
if [[ ${1:-} == --runs ]]; then
  runs_n=$2
  shift 2
fi
build=${1:-build/release}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

stall() {  # $1: true|false; prints seconds and checkpoint count, one run
  rm -rf "$dir/run"
  "$build/tessera" train examples/fashion_mnist_mlp.toml --quiet --set train.epochs=2 \
    --set train.checkpoint_every=20 --set "train.async_checkpoint=$1" \
    --set "train.run_dir=\"$dir/run\"" >"$dir/log" 2>&1 || { cat "$dir/log" >&2; exit 1; }
  grep '"checkpoint_seconds"' "$dir/run/metrics.jsonl" | tail -1 |
    grep -o '"checkpoint_seconds":[0-9.e+-]*' | cut -d: -f2
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "checkpoint directory: $(df -T "$dir" | awk 'NR == 2 { print $2 }') ($dir)"
echo "TESSERA_NUM_THREADS=${TESSERA_NUM_THREADS:-unset} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
declare -A result
for mode in false true; do
  values=()
  for ((i = 0; i < runs_n; i++)); do values+=("$(stall "$mode")"); done
  result[$mode]=$(printf '%s\n' "${values[@]}" | median)
done
bytes=$(stat -c %s "$(ls "$dir"/run/checkpoints/*.ckpt | tail -1)")
echo "| writes | training stalled for checkpoints (s, median of $runs_n) | checkpoint bytes |"
echo "| --- | --- | --- |"
echo "| in place | ${result[false]} | $bytes |"
echo "| background thread | ${result[true]} | $bytes |"
awk -v a="${result[false]}" -v b="${result[true]}" \
  'BEGIN { printf "stall with a background thread / in place: %.2f\n", b / a }'
