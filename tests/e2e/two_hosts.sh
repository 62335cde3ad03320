#!/bin/bash
# Two hosts, really separate: two network namespaces joined by a veth pair (10.200.0.1 and
# 10.200.0.2, addresses that exist only inside them), one `tessera train` launcher in each with
# --nnodes 2, and a short data-parallel training run across them (its gradient allreduces cross
# the veth pair; nothing else connects the namespaces). Cleans up after itself.
#
# Usage: two_hosts.sh TESSERA_BINARY. Exit 0: passed; 77: skipped (the reason is printed: not
# root, no `ip`, namespaces not permitted); anything else: failed.
set -u
tessera=${1:?usage: two_hosts.sh TESSERA_BINARY}
skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*"
  for f in "$work"/node*.out "$work"/node*.err; do
    echo "--- $f"
    cat "$f"
  done
  exit 1
}

command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
[ "$(id -u)" = 0 ] || skip "not root: creating network namespaces needs CAP_NET_ADMIN"

ns_a=tessera-e2e-a-$$
ns_b=tessera-e2e-b-$$
work=$(mktemp -d /tmp/tessera_two_hosts.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  ip netns del "$ns_a" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns_a" 2>"$work/ip.err" || skip "cannot create a network namespace: $(cat "$work/ip.err")"
ip netns add "$ns_b" 2>"$work/ip.err" || skip "cannot create a network namespace: $(cat "$work/ip.err")"
# The veth pair is created inside namespace A and its peer moved to B: the host's own network
# namespace never sees it.
ip -n "$ns_a" link add veth0 type veth peer name veth1 netns "$ns_b" 2>"$work/ip.err" ||
  skip "cannot create a veth pair: $(cat "$work/ip.err")"
ip -n "$ns_a" addr add 10.200.0.1/24 dev veth0 || fail "ip addr add in $ns_a"
ip -n "$ns_b" addr add 10.200.0.2/24 dev veth1 || fail "ip addr add in $ns_b"
for ns in "$ns_a" "$ns_b"; do
  ip -n "$ns" link set lo up || fail "lo up in $ns"
done
ip -n "$ns_a" link set veth0 up || fail "veth0 up"
ip -n "$ns_b" link set veth1 up || fail "veth1 up"

# 240 rows of two separable classes.
awk 'BEGIN { srand(7); print "a,b,c,d,label";
  for (r = 0; r < 240; r++) { l = r % 2; line = "";
    for (f = 0; f < 4; f++) line = line ((f % 2 == l) ? 1 : -1) + rand() - 0.5 ",";
    print line l } }' >"$work/train.csv"
cat >"$work/job.toml" <<TOML
[model]
layers = [{ type = "linear", out = 8 }, { type = "tanh" }, { type = "linear", out = 2 }]
[data]
train = "csv:$work/train.csv"
test = ""
batch_size = 64
[optimizer]
lr = 0.05
[train]
epochs = 2
log_every = 4
run_dir = "$work/run"
[parallel]
strategy = "ddp"
TOML

# In the environment, never on a command line: every user can read the arguments of a process.
TESSERA_JOB_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export TESSERA_JOB_TOKEN
export TESSERA_COMM_TIMEOUT_S=30
# auto: shared memory within each namespace, Gloo between them; gloo: Gloo between all 4 ranks.
for backend in auto gloo; do
  rm -rf "$work/run"
  # Node 1 starts first: its launcher keeps trying to reach node 0's store until node 0 is up.
  for node in 1 0; do
    ns=$ns_a
    [ "$node" = 1 ] && ns=$ns_b
    ip netns exec "$ns" timeout 60 "$tessera" train "$work/job.toml" --nproc 2 --nnodes 2 \
      --node-rank "$node" --rdzv 10.200.0.1:29400 --backend "$backend" \
      >"$work/node$node.out" 2>"$work/node$node.err" &
    pids+=($!)
    sleep 0.3
  done
  codes=()
  for pid in "${pids[@]}"; do
    wait "$pid"
    codes+=($?)
  done
  pids=()
  [ "${codes[0]}" = 0 ] || fail "backend $backend: node 1's launcher exited with ${codes[0]}"
  [ "${codes[1]}" = 0 ] || fail "backend $backend: node 0's launcher exited with ${codes[1]}"
  # Global batch 64 over 4 ranks: 60 samples each per epoch, 4 steps of 16; rank 0 reports.
  grep -q '^\[rank 0\] trained 8 steps' "$work/node0.out" ||
    fail "backend $backend: rank 0 did not report 8 steps"
  grep -q 'store at 10.200.0.1:29400; node 1 of 2, world size 4; started rank 2 (pid [0-9]*), rank 3' \
    "$work/node1.err" || fail "backend $backend: node 1 did not run ranks 2 and 3 against 10.200.0.1:29400"
  [ "$(grep -c train_loss "$work/run/metrics.jsonl")" = 2 ] ||
    fail "backend $backend: metrics not written once"
  echo "backend $backend: passed"
done
echo "PASSED: 4 ranks on two network namespaces trained across a veth pair (backends auto, gloo)"
