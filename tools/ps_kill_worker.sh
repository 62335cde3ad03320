#!/usr/bin/env bash
# Trains the Fashion-MNIST MLP through 2 parameter servers and 3 workers and SIGKILLs worker 2 at
# a step drawn from SEED; prints the step, the launcher's verdict and the final accuracy.
#   tools/ps_kill_worker.sh asp 1          # or ssp; SEED picks the step
set -euo pipefail
mode=${1:?usage: tools/ps_kill_worker.sh asp|ssp SEED [tessera binary]}
seed=${2:?usage: tools/ps_kill_worker.sh asp|ssp SEED [tessera binary]}
tessera=${3:-build/release/tessera}
here=$(cd "$(dirname "$0")/.." && pwd)
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
# 3 workers share each global batch, so it must divide by 3.
step=$(python3 -c "import random; random.seed($seed); print(random.randint(50, 4500))")
"$tessera" train "$here/examples/fashion_mnist_mlp_ps.toml" --nproc 5 \
  --set parallel.consistency="\"$mode\"" --set data.batch_size=126 \
  --set train.run_dir="\"$run\"" --set train.log_every=10 >"$run/out" 2>"$run/err" &
launcher=$!
# Rank 0 writes a metrics line every 10 steps; kill worker 2 once rank 0 has passed `step`.
until [ -s "$run/metrics.jsonl" ] &&
  [ "$(tail -n1 "$run/metrics.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("step", 0))')" -ge "$step" ]; do
  kill -0 $launcher 2>/dev/null || { cat "$run/err"; exit 1; }
  sleep 0.2
done
victim=$(grep -o 'rank 2 (pid [0-9]*' "$run/err" | head -n1 | grep -o '[0-9]*$')
kill -KILL "$victim"
echo "$mode: killed worker 2 (pid $victim) at about step $step of rank 0"
code=0
wait $launcher || code=$?
grep -E 'failed|goes on|lost worker' "$run/err" || true
tail -n2 "$run/out"
echo "launcher exit code $code"
exit $code
