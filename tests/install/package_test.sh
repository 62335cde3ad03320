#!/usr/bin/env bash
# Builds the Debian package of the build tree with cpack, checks its contents and fields, unpacks
# it into a scratch root (as dpkg would, without running dpkg -i) and runs check_installed.sh
# against <root>/usr.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR CXX_COMPILER GENERATOR [COMPILER_LAUNCHER]
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

(cd "$build_dir" && cpack -G DEB -B "$work/cpack") >"$work/cpack.log" 2>&1 || {
  cat "$work/cpack.log"
  fail "cpack -G DEB"
}
deb=$(find "$work/cpack" -maxdepth 1 -name 'tessera_*.deb')
[[ -n $deb ]] || fail "cpack made no tessera_*.deb: $(ls "$work/cpack")"

contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/tessera ./usr/include/tessera/comm/init.h ./usr/lib/libtessera_core.a \
  ./usr/lib/libtessera_train.a ./usr/lib/cmake/tessera/tessera-config.cmake \
  ./usr/lib/cmake/tessera/tessera-targets.cmake ./usr/lib/pkgconfig/tessera.pc; do
  grep -q " $path$" <<<"$contents" || fail "$deb lacks $path"
done
! grep -Eq '_test$|_bench$|_fuzz$' <<<"$contents" || fail "$deb holds a test, benchmark or fuzz program"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# libdnnl-dev is declared for programs that link the static libraries; libc6 comes from
# dpkg-shlibdeps reading the binary.
for package in libdnnl-dev libgloo-dev libopenmpi-dev libtomlplusplus-dev libc6; do
  grep -Eq "(^|, )$package( |,|$)" <<<"$depends" || fail "Depends lacks $package"
done

root=$work/root
dpkg -x "$deb" "$root"
"$root/usr/bin/tessera" --help >/dev/null || fail "the packaged tessera --help exited with $?"
"$here/check_installed.sh" "$root/usr" "$source_dir" "$work" "${@:3}"
echo "OK: $(basename "$deb") unpacked and used"
