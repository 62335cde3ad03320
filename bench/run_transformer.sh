#!/usr/bin/env bash
# The transformer benchmark against PyTorch; see bench/run_transformer.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_transformer.py "$@"
