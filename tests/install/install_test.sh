#!/usr/bin/env bash
# `cmake --install` of the build tree into a temporary prefix, then check_installed.sh against it.
# Checks first that only the `tessera` binary is installed (no tests, benchmarks or fuzz harnesses)
# and that the installed CMake and pkg-config files name no path of the source or build tree.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR CXX_COMPILER GENERATOR [COMPILER_LAUNCHER]
# Exits 77 (skipped) when the Fashion-MNIST files the examples train on are not installed.
set -euo pipefail
build_dir=$1
source_dir=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

data=/usr/share/datasets/fashion-mnist
if [[ ! -e $data/train-images-idx3-ubyte.gz && ! -e $data/train-images-idx3-ubyte ]]; then
  echo "SKIP: $data not found: install the Debian package dataset-fashion-mnist"
  exit 77
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  fail "cmake --install $build_dir"
}
programs=$(ls "$prefix/bin")
[[ $programs == tessera ]] || fail "bin/ holds: $(echo $programs); expected only tessera"
leaks=$(find "$prefix" \( -name '*.cmake' -o -name '*.pc' \) -exec grep -lF -e "$source_dir" -e "$build_dir" {} +) || true
[[ -z $leaks ]] || fail "installed files name the source or build tree: $leaks"

"$here/check_installed.sh" "$prefix" "$source_dir" "$work" "${@:3}"
echo "OK: installed into a temporary prefix and used from there"
