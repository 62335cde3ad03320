#!/usr/bin/env bash
# Runs the data-parallel benchmark (tessera DDP beside PyTorch DDP); see bench/run_ddp.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_ddp.py "$@"
