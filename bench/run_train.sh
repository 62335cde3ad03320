#!/usr/bin/env bash
# Runs the end-to-end training benchmark (tessera beside PyTorch); see bench/run_train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_train.py "$@"
