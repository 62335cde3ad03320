#!/usr/bin/env bash
# Runs examples/ctr_fm_ps.toml (2 servers, 2 workers) on a smaller data set from
# tools/make_ctr_data and checks that the factorization machine's test AUC is within 0.01 of the
# generator's true model, and that the servers, not the workers, hold the rows.
# Usage: ctr_ps_test.sh TESSERA_BINARY MAKE_CTR_DATA_BINARY EXAMPLE_CONFIG
set -euo pipefail
tessera=$1
generator=$2
example=$3

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$generator" --out "$dir/data" --train 1000000 --test 50000 --fields 8 --vocab 100000 >/dev/null
truth=$(sed -n 's/.*"test_auc": \([0-9.]*\).*/\1/p' "$dir/data/truth.json")
[[ -n $truth ]] || fail "no test_auc in $dir/data/truth.json"

status=0
out=$("$tessera" train "$example" --set "data.train=\"libsvm:$dir/data/train.libsvm\"" \
  --set "data.test=\"libsvm:$dir/data/test.libsvm\"" --set train.epochs=2 \
  --set "train.run_dir=\"$dir/run\"" 2>&1) || status=$?
echo "$out" | grep -v ' step '
[[ $status -eq 0 ]] || fail "tessera train $example exited with $status"

auc=$(sed -n 's/^\[rank 0\] worker 0: .*test AUC \([0-9.]*\),.*/\1/p' <<<"$out")
[[ -n $auc ]] || fail "worker 0 printed no test AUC"
awk -v a="$auc" -v t="$truth" 'BEGIN { exit !(a >= t - 0.01) }' ||
  fail "test AUC $auc is more than 0.01 below the true model's $truth"

rows=$(sed -n 's/.*ps server [01]: done .* holds \([0-9]*\) rows.*/\1/p' <<<"$out")
[[ $(wc -l <<<"$rows") -eq 2 ]] || fail "expected both servers to report the rows they hold"
total=$(awk '{ s += $1 } END { print s }' <<<"$rows")
[[ $total -gt 100000 ]] || fail "the servers hold only $total rows"
[[ $(grep -c "peak resident memory" <<<"$out") -eq 4 ]] ||
  fail "expected the peak memory of 2 workers and 2 servers"
echo "OK: test AUC $auc, true model $truth; the servers hold $total rows"
