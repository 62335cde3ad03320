#!/usr/bin/env bash
# Uses a tessera installed under PREFIX as a user would: builds examples/ as a project of its own
# (find_package(tessera), tessera::tessera), runs train_mlp for a few steps and train_ddp as two
# ranks under the installed `tessera launch`, then builds tests/install/pkg_config_check.cc with
# nothing but `pkg-config --cflags --libs tessera` and runs it as one rank.
# Usage: check_installed.sh PREFIX SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR [COMPILER_LAUNCHER]
set -euo pipefail
prefix=$1
source_dir=$2
work=$3
cxx=$4
generator=$5
launcher=${6:-}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# Runs a command quietly; shows its output when it fails.
quiet() {
  local log
  log=$(mktemp -p "$work")
  "$@" >"$log" 2>&1 || {
    cat "$log"
    fail "$*"
  }
}

build=$work/examples
quiet cmake -S "$source_dir/examples" -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" ${launcher:+"-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher"} \
  -DCMAKE_PREFIX_PATH="$prefix"
quiet cmake --build "$build"

out=$("$build/train_mlp" 1 20) || fail "train_mlp exited with $?"
echo "$out"
grep -Eq '^epoch 1: test accuracy [0-9.]+%$' <<<"$out" || fail "train_mlp printed no accuracy"

"$source_dir/tests/examples/train_ddp_test.sh" "$prefix/bin/tessera" "$build/train_ddp"

pc=$(find "$prefix" -name tessera.pc)
[[ -n $pc ]] || fail "no tessera.pc under $prefix"
export PKG_CONFIG_PATH=${pc%/*}
read -ra cflags <<<"$(pkg-config --cflags tessera)"
read -ra libs <<<"$(pkg-config --libs tessera)"
quiet $launcher "$cxx" "${cflags[@]}" "$source_dir/tests/install/pkg_config_check.cc" \
  -o "$work/pkg_config_check" "${libs[@]}"
out=$("$prefix/bin/tessera" launch --nproc 1 "$work/pkg_config_check" "$work/run" 2>&1) ||
  fail "pkg_config_check exited with $?: $out"
echo "$out"
grep -q 'trained 2 steps' <<<"$out" || fail "pkg_config_check did not train"
