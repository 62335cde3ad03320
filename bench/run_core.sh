#!/usr/bin/env bash
# Runs the core benchmark (tessera beside PyTorch); see bench/run_core.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_core.py "$@"
