#!/usr/bin/env bash
# Installs the peers that benchmarks measure against (PyTorch on CPU, scikit-learn, XGBoost) and
# matplotlib for their plots. Benchmarks only: never a dependency of the library. Idempotent:
# installs only what is missing.
set -euo pipefail

exec "$(dirname "${BASH_SOURCE[0]}")/ensure-packages.sh" python3-torch python3-numpy python3-matplotlib \
  python3-sklearn python3-xgboost
