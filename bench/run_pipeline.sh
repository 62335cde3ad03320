#!/usr/bin/env bash
# Pipeline parallelism's bubble, memory and speed; see bench/run_pipeline.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_pipeline.py "$@"
