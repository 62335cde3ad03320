#!/usr/bin/env bash
# Collective bandwidth, median of several bench/comm_bench runs; see bench/run_comm.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 bench/run_comm.py "$@"
