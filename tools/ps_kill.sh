#!/usr/bin/env bash
# Trains the Fashion-MNIST MLP through 2 parameter servers and 3 workers and SIGKILLs worker 2 or
# server 1 at a step drawn from SEED; prints the step, the launcher's verdict and the final
# accuracy. A killed server is started again by the launcher (--max-restarts 1) and goes on from
# its last checkpoint (taken every 5 s here).
#   tools/ps_kill.sh worker asp 1          # or ssp; SEED picks the step
#   tools/ps_kill.sh server ssp 1
set -euo pipefail
usage="usage: tools/ps_kill.sh worker|server asp|ssp SEED [tessera binary]"
who=${1:?$usage}
mode=${2:?$usage}
seed=${3:?$usage}
tessera=${4:-build/release/tessera}
case $who in
  worker) rank=2 ;;
  server) rank=4 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
# 3 workers share each global batch, so it must divide by 3.
step=$(python3 -c "import random; random.seed($seed); print(random.randint(50, 4500))")
"$tessera" train "$here/examples/fashion_mnist_mlp_ps.toml" --nproc 5 --max-restarts 1 \
  --set parallel.consistency="\"$mode\"" --set data.batch_size=126 \
  --set parallel.server_checkpoint_s=5 \
  --set train.run_dir="\"$run\"" --set train.log_every=10 >"$run/out" 2>"$run/err" &
launcher=$!
# Rank 0 writes a metrics line every 10 steps; kill the victim once rank 0 has passed `step`.
until [ -s "$run/metrics.jsonl" ] &&
  [ "$(tail -n1 "$run/metrics.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("step", 0))')" -ge "$step" ]; do
  kill -0 $launcher 2>/dev/null || { cat "$run/err"; exit 1; }
  sleep 0.2
done
victim=$(grep -o "rank $rank (pid [0-9]*" "$run/err" | head -n1 | grep -o '[0-9]*$')
kill -KILL "$victim"
echo "$mode: killed $who (rank $rank, pid $victim) at about step $step of rank 0"
code=0
wait $launcher || code=$?
grep -E 'failed|goes on|lost worker|again|started from|did not come back' "$run/err" || true
tail -n2 "$run/out"
echo "launcher exit code $code"
exit $code
