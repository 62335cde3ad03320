#!/usr/bin/env bash
# Peak tensor memory per rank of DDP, ZeRO-1 and ZeRO-2 on 2 and 4 ranks: the Fashion-MNIST MLP of
# examples/ with Adam, 50 steps, read from the metrics' peak_tensor_bytes (every live tensor's
# storage: parameters, gradients, optimizer state, activations, communication buckets). The ratio
# compares the largest rank's peak with DDP's on as many ranks, measured in the same run.
#
# Usage: bench/run_memory.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build/release}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT

echo "| strategy | ranks | peak tensor bytes per rank | largest / DDP's | optimizer state bytes per rank |"
echo "| --- | --- | --- | --- | --- |"
for nproc in 2 4; do
  ddp_peak=0
  for variant in ddp zero1 zero2; do
    case $variant in
      ddp) strategy=ddp stage=1 ;;
      zero1) strategy=zero stage=1 ;;
      zero2) strategy=zero stage=2 ;;
    esac
    if ! "$build/tessera" train examples/fashion_mnist_mlp.toml --nproc "$nproc" --quiet \
      --set 'optimizer.name="adam"' --set optimizer.lr=0.001 \
      --set "parallel.strategy=\"$strategy\"" --set "parallel.zero_stage=$stage" \
      --set train.max_steps=50 --set train.log_every=50 \
      --set "train.run_dir=\"$runs/$variant-$nproc\"" >"$runs/log" 2>&1; then
      cat "$runs/log" >&2
      exit 1
    fi
    line=$(grep '"peak_tensor_bytes"' "$runs/$variant-$nproc/metrics.jsonl" | tail -1)
    peaks=$(grep -o '"peak_tensor_bytes":\[[0-9,]*\]' <<<"$line" | grep -o '[0-9,]*' | tr ',' ' ')
    state=$(grep -o '"optimizer_state_bytes":[0-9]*' <<<"$line" | cut -d: -f2)
    largest=$(tr ' ' '\n' <<<"$peaks" | sort -n | tail -1)
    [[ $variant == ddp ]] && ddp_peak=$largest
    ratio=$(awk -v a="$largest" -v b="$ddp_peak" 'BEGIN { printf "%.2f", a / b }')
    echo "| $variant | $nproc | ${peaks// /, } | $ratio | $state |"
  done
done
