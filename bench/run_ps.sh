#!/usr/bin/env bash
# The parameter server's benchmark: push/pull speed against ps-lite's figures from issue 11, and
# training in bsp, asp and ssp with convergence curves; see bench/run_ps.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec /usr/bin/python3 bench/run_ps.py "$@"
