#!/usr/bin/env python3
"""The long form of the fault-tolerance suite: elastic jobs with faults at seeded random steps.

Trains the Fashion-MNIST MLP of examples/ as elastic jobs of 2 workers, one job per kind of fault,
each with --repeats faults at random steps (seeded), and checks each job against an uninterrupted
run of the same config: it finishes within 0.5 points of its test accuracy, or stops with a clear
error and a checkpoint that verifies; every checkpoint left verifies (`tessera inspect`); no
process is left behind. Prints a table: faults injected and survived per kind, steps lost per
fault (at most train.memory_copy_every when the round resumed from memory copies; else
train.checkpoint_every, twice that when the newest checkpoint is damaged), how many rounds resumed
from memory and from storage (the checkpoint faults run without memory copies), recovery time (from
the agent's report of the failure to rank 0's report of its resume), final accuracy against the
uninterrupted run.

Kinds: sigkill sigstop exit corrupt truncate write host join (any user), disk netcut (root:
a small tmpfs, two network namespaces). docs/fault-tolerance.md says what each survives.

--strategy ps runs a parameter-server job instead (asp: 3 workers and 1 server, a fixed size, each
failed process started again alone by --max-restarts) with the kinds that apply to it: sigkill,
sigstop and exit of workers 0, 1 and 2 in turn (one fault each: a worker started again injects
none; a hung one is found by its server's heartbeat deadline, 3 s here; rank 0, which writes the
metrics and checkpoints, goes on with them from its servers' step), and server (the server SIGKILLed at a random time, --repeats times). A worker started again goes
on from its servers' step; a server started again from its checkpoint, taken every
parallel.server_checkpoint_s, so the updates since are lost (not counted in steps).

Usage: tools/chaos.py [--build build/release] [--kinds K,K] [--repeats 2] [--epochs 10] [--seed 1]
                      [--strategy ddp|zero1|zero2|zero3|pipeline|tensor|ps] [--spares N]
                      [--nproc N]
"""
import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CHECKPOINT_EVERY = 50
MEMORY_COPY_EVERY = 10
STORAGE_KINDS = ("corrupt", "truncate", "write")  # faults of the checkpoints: memory copies off
BATCH = 120  # divides by 1 to 4 workers: every round trains on the same global batch
STEPS_PER_EPOCH = 60000 // BATCH
TOKEN = "chaos" + "0123456789abcdef"
ROOT_KINDS = ("disk", "netcut")
ALL_KINDS = ("sigkill", "sigstop", "exit", "corrupt", "truncate", "write", "host", "join") + ROOT_KINDS
PS_KINDS = ("sigkill", "sigstop", "exit", "server")
# A parameter-server job: ranks 0 to 2 train, rank 3 serves, checkpointing every 0.2 s.
PS_SERVER = 3
PS_JOB = ["--nproc", "4", "--set", "parallel.servers=1", "--set", 'parallel.consistency="asp"',
          "--set", "parallel.server_checkpoint_s=0.2", "--set", "parallel.heartbeat_timeout_s=3"]


class Agent:
    """One `tessera train` agent; its stderr lines kept with the time each arrived."""

    def __init__(self, args, env, prefix=()):
        self.lines = []
        self.proc = subprocess.Popen(list(prefix) + args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out = ""
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def wait(self, timeout):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for t in self._threads:
            t.join(5)
        return code

    def saw(self, text):
        return any(text in line for _, line in self.lines)

    def err(self):
        return "\n".join(line for _, line in self.lines)


STRATEGIES = {  # --strategy: the [parallel] settings
    "ddp": ['parallel.strategy="ddp"'],
    "zero1": ['parallel.strategy="zero"', "parallel.zero_stage=1"],
    "zero2": ['parallel.strategy="zero"', "parallel.zero_stage=2"],
    "zero3": ['parallel.strategy="zero"', "parallel.zero_stage=3"],
    "pipeline": ['parallel.strategy="pipeline"', "parallel.micro_batches=4"],
    "tensor": ['parallel.strategy="tensor"'],
    "ps": ['parallel.strategy="ps"'],
}
STRATEGY = STRATEGIES["ddp"]
SPARES = 0  # --spares: each agent of an elastic job keeps this many
NPROC = 2  # --nproc: the workers of a one-host job


def base_args(build, run_dir, epochs, extra=()):
    sets = [a for s in STRATEGY for a in ("--set", s)]
    return [f"{build}/tessera", "train", "examples/fashion_mnist_mlp.toml",
            *sets, "--set", f"data.batch_size={BATCH}",
            "--set", f"train.epochs={epochs}", "--set", f"train.checkpoint_every={CHECKPOINT_EVERY}",
            "--set", f"train.memory_copy_every={MEMORY_COPY_EVERY}",
            "--set", "train.threads=1", "--set", "parallel.timeout_s=3",
            "--set", f'train.run_dir="{run_dir}"', "--grace", "1", "--rdzv-wait", "2",
            *(["--spares", str(SPARES)] if SPARES and "--max-restarts" in extra else []), *extra]


def accuracy(text):
    found = re.findall(r"test accuracy ([0-9.]+)%", text)
    return float(found[-1]) if found else None


def verify_checkpoints(build, run_dir):
    """(checkpoints that verify, those that do not)."""
    good, bad = 0, []
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    for name in sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []:
        if not name.endswith(".ckpt"):
            continue
        r = subprocess.run([f"{build}/tessera", "inspect", os.path.join(ckpt_dir, name)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            good += 1
        else:
            bad.append(name)
    return good, bad


def processes_left(run_dir):
    r = subprocess.run(["pgrep", "-f", run_dir], capture_output=True, text=True)
    return len(r.stdout.split())


def recovery_times(agents):
    """Seconds from each failure the agents reported to the next round's resume (rank 0's line;
    the agents' own report of the round comes later, when they next read the store)."""
    events = sorted((t, line) for a in agents for t, line in a.lines
                    if "failed:" in line or " ended: " in line or "[rank 0] resumed from" in line)
    times, failed_at = [], None
    for t, line in events:
        if "[rank 0] resumed from" in line:
            if failed_at is not None:
                times.append(t - failed_at)
            failed_at = None
        elif failed_at is None:
            failed_at = t
    return times


def resume_sources(agents):
    """(rounds resumed from a memory copy, rounds resumed from a checkpoint file)."""
    text = "\n".join(a.err() for a in agents)
    return (len(re.findall(r"\] resumed from (?:rank \d+'s|the) memory copy", text)),
            len(re.findall(r"\] resumed from /", text)))


def steps_lost(agents):
    return [int(n) for a in agents for n in re.findall(r"(\d+) step\(s\) lost", a.err())]


def ps_steps_lost(agents):
    """A worker's steps from its fault to the servers' step it went on from."""
    text = "\n".join(a.err() for a in agents)
    faults = dict(re.findall(r"fault injected: rank (\d+) at step (\d+)", text))
    resumed = re.findall(r"ps worker (\d+): started again; going on from step (\d+)", text)
    return [int(faults[r]) - int(step) for r, step in resumed if r in faults]


def ps_recovery_times(agents):
    """Seconds from each fault (its injection, or the launcher's report of a server's death) to
    the same rank started again and training (a worker: "going on from step") or serving (a
    server: "ps server ... from"); a hang's include the heartbeat deadline that finds it."""
    starts, times = {}, []
    for t, line in sorted((t, line) for a in agents for t, line in a.lines):
        began = (re.search(r"fault injected: rank (\d+)", line) or
                 re.search(r"launcher: rank (\d+) \(pid \d+\) failed: ", line))
        back = (re.search(r"\[rank (\d+)\] ps worker \d+: started again; going on", line) or
                re.search(r"\[rank (\d+)\] ps server \d+ of \d+ at .*, from ", line))
        if began:
            starts.setdefault(began.group(1), t)
        elif back and back.group(1) in starts:
            times.append(t - starts.pop(back.group(1)))
    return times


def fault_steps(rng, repeats, epochs, aligned=False):
    """`repeats` increasing steps in the run's middle; `aligned`: just after a checkpoint."""
    total = epochs * STEPS_PER_EPOCH
    steps = sorted(rng.sample(range(total // 5, total * 4 // 5), repeats))
    if aligned:
        steps = [s - s % CHECKPOINT_EVERY + 1 for s in steps]
    return steps


def worker_faults(kind, steps):
    name = {"write": "sigkill"}.get(kind, kind)
    return ",".join(f"{name}:rank={i % NPROC}:step={s}:attempt={i}" for i, s in enumerate(steps))


def run_ps_job(kind, args, work, rng):
    """Runs one parameter-server job with `kind` faults; returns its row's facts."""
    run_dir = os.path.join(work, kind)
    env = dict(os.environ, TESSERA_JOB_TOKEN=TOKEN)
    restarts = ["--max-restarts", str(args.repeats)]
    repeats = args.repeats if kind == "server" else min(args.repeats, 3)
    if kind != "server":
        steps = fault_steps(rng, repeats, args.epochs)
        env["TESSERA_FAULTS"] = ",".join(f"{kind}:rank={i}:step={s}" for i, s in enumerate(steps))
    agent = Agent(base_args(args.build, run_dir, args.epochs, [*PS_JOB, *restarts]), env)
    if kind == "server":
        wait_for([agent], "ps server 0 of 1 at", 120)
        for i in range(repeats):
            time.sleep(rng.uniform(2, 6))
            pid = re.findall(rf"rank {PS_SERVER} (?:started again )?\(pid (\d+)\)", agent.err())[-1]
            os.kill(int(pid), signal.SIGKILL)
            end = time.monotonic() + 60
            while (agent.err().count(f"rank {PS_SERVER} started again") <= i
                   and time.monotonic() < end):
                time.sleep(0.1)
    code = agent.wait(900)
    row = {"kind": kind, "injected": repeats, "codes": [code], "agents": [agent],
           "accuracy": accuracy(agent.out), "lost": ps_steps_lost([agent]),
           "recovery": ps_recovery_times([agent]), "sources": None,
           "left": processes_left(run_dir)}
    row["good"], row["bad"] = verify_checkpoints(args.build, run_dir)
    return row


def run_job(kind, args, work, rng):
    """Runs one job with `kind` faults; returns its row's facts."""
    if STRATEGY == STRATEGIES["ps"]:
        return run_ps_job(kind, args, work, rng)
    run_dir = os.path.join(work, kind)
    env = dict(os.environ, TESSERA_JOB_TOKEN=TOKEN)
    agents, injected, extra, prefix = [], args.repeats, [], []
    steps = fault_steps(rng, args.repeats, args.epochs, aligned=kind == "write")
    restarts = ["--max-restarts", str(args.repeats + 1)]
    cleanup = []
    if kind in ("sigkill", "sigstop", "exit", "corrupt", "truncate", "write"):
        env["TESSERA_FAULTS"] = worker_faults(kind, steps)
        if kind in STORAGE_KINDS:
            extra = ["--set", "train.memory_copy_every=0"]
        if kind in ("corrupt", "truncate"):
            extra += ["--set", "train.async_checkpoint=false"]  # the damaged file is the newest
        agents.append(Agent(base_args(args.build, run_dir, args.epochs,
                                      ["--nproc", str(NPROC), *restarts, *extra]), env))
    elif kind in ("host", "join"):
        # host: a host's agent killed (SIGKILL: its workers die with it), a new host joining once
        # the job goes on without it; join: a new host joining, twice.
        rdzv = f"127.0.0.1:{free_port()}"
        nodes = ["--nnodes", "1:4", "--nproc", "1", "--rdzv", rdzv, *restarts]
        for _ in range(2):
            agents.append(Agent(base_args(args.build, run_dir, args.epochs, nodes), env))
        rounds = 0
        for i in range(args.repeats):
            wait_for(agents, f"round {rounds} resumed" if rounds else "round 0: node", 120)
            time.sleep(rng.uniform(0.5, 2))
            if kind == "host":
                victim = next(a for a in reversed(agents)
                              if a.proc.poll() is None and not a.saw("hosting the rendezvous"))
                victim.proc.kill()
                rounds += 1
                wait_for(agents, f"round {rounds} resumed", 120)
            agents.append(Agent(base_args(args.build, run_dir, args.epochs, nodes), env))
            rounds += 1
    elif kind == "disk":
        os.makedirs(run_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", run_dir], check=True)
        cleanup.append(["umount", run_dir])
        injected = 1
        agents.append(Agent(base_args(args.build, run_dir, args.epochs,
                                      ["--nproc", str(NPROC), *restarts]), env))
    elif kind == "netcut":
        ns, store, cleanup = make_namespaces(work)
        nodes = ["--nnodes", "1:2", "--nproc", "1", "--rdzv", f"{store}:29555", *restarts]
        for n in ns:
            agents.append(Agent(base_args(args.build, run_dir, args.epochs, nodes), env,
                                ["ip", "netns", "exec", n]))
        for i in range(args.repeats):
            wait_for(agents, f"round {2 * i}: node", 60)
            time.sleep(rng.uniform(2, 5))
            subprocess.run(["ip", "-n", ns[1], "link", "set", "veth-b", "down"], check=True)
            time.sleep(8)
            subprocess.run(["ip", "-n", ns[1], "link", "set", "veth-b", "up"], check=True)
            agents.append(Agent(base_args(args.build, run_dir, args.epochs, nodes), env,
                                ["ip", "netns", "exec", ns[1]]))
    codes = [a.wait(600) for a in agents]
    row = {"kind": kind, "injected": injected, "codes": codes, "agents": agents,
           "accuracy": max((accuracy(a.out) for a in agents if accuracy(a.out) is not None),
                           default=None),
           "lost": steps_lost(agents), "recovery": recovery_times(agents),
           "sources": resume_sources(agents),
           "left": processes_left(run_dir)}
    row["good"], row["bad"] = verify_checkpoints(args.build, run_dir)
    for c in cleanup:
        subprocess.run(c, capture_output=True)
    return row


def wait_for(agents, text, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(a.saw(text) for a in agents):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no agent said {text!r} within {timeout} s")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_namespaces(work):
    """Two namespaces joined by veth-a (10.201.0.1) and veth-b (10.201.0.2)."""
    tag = str(os.getpid())
    ns = [f"chaos-a-{tag}", f"chaos-b-{tag}"]
    for n in ns:
        subprocess.run(["ip", "netns", "add", n], check=True)
    subprocess.run(["ip", "link", "add", "veth-a", "netns", ns[0], "type", "veth", "peer", "name",
                    "veth-b", "netns", ns[1]], check=True)
    for n, dev, addr in ((ns[0], "veth-a", "10.201.0.1/24"), (ns[1], "veth-b", "10.201.0.2/24")):
        subprocess.run(["ip", "-n", n, "addr", "add", addr, "dev", dev], check=True)
        subprocess.run(["ip", "-n", n, "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
    return ns, "10.201.0.1", [["ip", "netns", "del", n] for n in ns]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build/release")
    parser.add_argument("--kinds", default="",
                        help=f"default: all ({','.join(ALL_KINDS)}; with --strategy ps "
                             f"{','.join(PS_KINDS)})")
    parser.add_argument("--repeats", type=int, default=2, help="faults per job")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strategy", default="ddp", choices=sorted(STRATEGIES),
                        help="tensor needs a world size dividing the 10 classes: leave out "
                             "host, join and netcut, which change it")
    parser.add_argument("--spares", type=int, default=0,
                        help="spare workers each agent keeps ready (tessera train --spares)")
    parser.add_argument("--nproc", type=int, default=2,
                        help="workers of the one-host jobs (host, join and netcut run one "
                             "worker a host); above 2, with a sharded strategy, each worker keeps "
                             "its piece of the memory copy and a partner's, not all of it")
    args = parser.parse_args()
    global STRATEGY, SPARES, NPROC
    STRATEGY = STRATEGIES[args.strategy]
    SPARES = args.spares
    NPROC = args.nproc
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ps = args.strategy == "ps"
    known = PS_KINDS if ps else ALL_KINDS
    kinds = [k for k in (args.kinds or ",".join(known)).split(",") if k]
    for k in kinds:
        if k not in known:
            sys.exit(f"chaos: unknown kind {k!r} for strategy {args.strategy}; "
                     f"kinds: {', '.join(known)}")
    if os.geteuid() != 0 or not shutil.which("ip"):
        skipped = [k for k in kinds if k in ROOT_KINDS]
        kinds = [k for k in kinds if k not in ROOT_KINDS]
        if skipped:
            print(f"chaos: skipping {', '.join(skipped)}: they need root and iproute2")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="tessera_chaos_")
    try:
        print(f"machine: {os.cpu_count()} cores; strategy {args.strategy}; seed {args.seed}, "
              f"{args.epochs} epochs ({args.epochs * STEPS_PER_EPOCH} steps), checkpoint every "
              f"{CHECKPOINT_EVERY} steps, " +
              ("asp, 3 workers, 1 server checkpointing every 0.2 s" if ps else
               f"memory copy every {MEMORY_COPY_EVERY} (none for {', '.join(STORAGE_KINDS)})"))
        base = Agent(base_args(args.build, os.path.join(work, "uninterrupted"), args.epochs,
                               PS_JOB if ps else ["--nproc", str(NPROC)]), dict(os.environ))
        base.wait(600)
        reference = accuracy(base.out)
        print(f"uninterrupted: test accuracy {reference}%")
        print("| fault | injected | survived | exit codes | steps lost per fault (max) | "
              "resumed from memory / disk | recovery s (median) | accuracy vs uninterrupted | "
              "checkpoints verified | processes left |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        failures = 0
        for kind in kinds:
            row = run_job(kind, args, work, rng)
            finished = row["accuracy"] is not None
            close = finished and reference is not None and abs(row["accuracy"] - reference) <= 0.5
            stopped = not finished and any(c != 0 for c in row["codes"]) and row["good"] > 0
            # A damaged newest checkpoint costs the one before it too, as does one whose write the
            # fault cut short; a full disk is found when the write in the background fails, at
            # the next checkpoint. Memory copies bound the rest, unless none survived (then the
            # checkpoint interval).
            from_memory, from_disk = row["sources"] or ("-", "-")
            if ps:
                bound = 1  # a worker goes on from its servers' step: at most the one in flight
            elif kind in ("corrupt", "truncate", "write", "disk"):
                bound = 2 * CHECKPOINT_EVERY
            elif kind in STORAGE_KINDS or from_disk:
                bound = CHECKPOINT_EVERY
            else:
                bound = MEMORY_COPY_EVERY
            ok = (close or stopped) and not row["bad"] and row["left"] == 0 and (
                not row["lost"] or max(row["lost"]) <= bound)
            failures += not ok
            survived = row["injected"] if close else 0
            rec = statistics.median(row["recovery"]) if row["recovery"] else None
            print(f"| {kind} | {row['injected']} | {survived}"
                  f"{'' if finished else ' (stopped resumably)' if stopped else ''} | "
                  f"{','.join(map(str, row['codes']))} | "
                  f"{max(row['lost']) if row['lost'] else '-'} | {from_memory} / {from_disk} | "
                  f"{f'{rec:.2f}' if rec is not None else '-'} | "
                  f"{row['accuracy'] if finished else '-'} vs {reference} | "
                  f"{row['good']} ok{', bad: ' + ' '.join(row['bad']) if row['bad'] else ''} | "
                  f"{row['left']} |", flush=True)
            if not ok:
                for a in row["agents"]:
                    sys.stderr.write(a.err()[-3000:] + "\n")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
