#!/usr/bin/env bash
# Model parallelism's bubble, memory and speed; see bench/run_model_parallel.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_model_parallel.py "$@"
