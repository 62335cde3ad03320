#!/usr/bin/env bash
# Runs examples/train_ddp as two ranks under `tessera launch` for a few steps and checks that the
# job succeeded, rank 0 printed the loss, and both ranks printed the same parameter checksum.
# Usage: train_ddp_test.sh TESSERA_BINARY TRAIN_DDP_BINARY
# Exits 77 (skipped) when the Fashion-MNIST files are not installed.
set -euo pipefail
tessera=$1
program=$2
steps=20

data=/usr/share/datasets/fashion-mnist
if [[ ! -e $data/train-images-idx3-ubyte.gz && ! -e $data/train-images-idx3-ubyte ]]; then
  echo "SKIP: $data not found: install the Debian package dataset-fashion-mnist"
  exit 77
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

status=0
out=$("$tessera" launch --nproc 2 "$program" "$steps" 2>&1) || status=$?
echo "$out"
[[ $status -eq 0 ]] || fail "tessera launch --nproc 2 $program exited with $status"
grep -Eq "^\[rank 0\] $steps steps: loss [0-9]+\.[0-9]+$" <<<"$out" ||
  fail "rank 0 printed no line \"$steps steps: loss ...\""
crc() { sed -n "s/^\[rank $1\] rank $1: parameters crc32 \([0-9a-f]\{8\}\)$/\1/p" <<<"$out"; }
crc0=$(crc 0)
crc1=$(crc 1)
[[ -n $crc0 && -n $crc1 ]] || fail "a rank printed no parameter checksum (rank 0: '$crc0', rank 1: '$crc1')"
[[ $crc0 == "$crc1" ]] || fail "the ranks' parameters differ: crc32 $crc0 on rank 0, $crc1 on rank 1"
echo "OK: $steps steps on 2 ranks, parameters crc32 $crc0 on both"
