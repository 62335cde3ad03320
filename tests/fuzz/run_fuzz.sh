#!/usr/bin/env bash
# Runs one libFuzzer harness for $FUZZ_SECONDS (default 3) over its seeds and regressions, then
# prints what it did: executions, coverage, and where a crashing input was saved.
# Usage: run_fuzz.sh HARNESS WORK_DIR SEEDS_DIR REGRESSIONS_DIR
set -euo pipefail
harness=$1 work=$2 seeds=$3 regressions=$4
seconds=${FUZZ_SECONDS:-3}
mkdir -p "$work/corpus" "$work/artifacts" "$regressions"
# The first directory receives new inputs; the seeds and regressions in the tree stay as they are.
# -rss_limit_mb also caps single allocations: a reader must refuse a huge size, not allocate it.
set +e
"$harness" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds" "$regressions" \
  > "$work/log.txt" 2>&1
rc=$?
set -e
grep -E '^#[0-9]+ +DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/log.txt" || true
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$work/log.txt"
  echo "$(basename "$harness") failed (exit $rc); the input is in $work/artifacts/:" \
    "fix the bug and keep the input in $regressions/"
fi
exit "$rc"
