#!/usr/bin/env bash
# Installs what tessera needs to build, test and train (Debian 12 packages; see
# docs/architecture.md, "Dependencies"). Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config  # toolchain
  clang-format clang-tidy                       # format and naming checks (make lint)
  clang libclang-rt-14-dev libomp-dev lld       # sanitizer build with libFuzzer, linked by lld (make test, make fuzz)
  libdnnl-dev ocl-icd-opencl-dev                # float32 GEMM and convolution (oneDNN; its CMake config asks for OpenCL)
  libopenblas-dev                               # float64 GEMM (gradient checks)
  libgtest-dev libgmock-dev googletest          # unit tests
  libbenchmark-dev                              # micro-benchmarks
  zlib1g-dev                                    # gzipped IDX data
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev  # config, command line, JSON
  libgloo-dev                                   # collectives over TCP (default backend)
  libopenmpi-dev openmpi-bin                    # MPI backend and mpirun
  libssl-dev                                    # HMAC-SHA256 and nonces for the store's challenge-response (libcrypto)
  dataset-fashion-mnist                         # the real data set, in /usr/share
  fortunes                                      # text for examples/char_transformer.toml
  time iproute2                                 # /usr/bin/time, ip/ss for e2e tests
)

exec "$(dirname "${BASH_SOURCE[0]}")/ensure-packages.sh" "${packages[@]}"
