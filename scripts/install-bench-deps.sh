#!/usr/bin/env bash
# Installs the peer that benchmarks measure against (PyTorch on CPU) and matplotlib for their
# plots. Benchmarks only: never a dependency of the library. Idempotent: installs only what is
# missing.
set -euo pipefail

exec "$(dirname "${BASH_SOURCE[0]}")/ensure-packages.sh" python3-torch python3-numpy python3-matplotlib
