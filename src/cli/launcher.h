#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tessera::cli {

struct LaunchOptions {
  // Workers on this host, and hosts in the job (each running one launcher): the world has
  // nproc * nnodes ranks, node R running ranks R * nproc ... R * nproc + nproc - 1.
  int nproc = 1;
  int nnodes = 1;
  int node_rank = 0;
  // HOST:PORT of the rendezvous store. Node 0's launcher listens there (so HOST must be one of its
  // addresses); the others' workers connect there. Required when nnodes > 1; empty on one host:
  // loopback on a free port.
  std::string rdzv;
  // Passed to the workers as TESSERA_BACKEND: auto | gloo | mpi | shm.
  std::string backend = "auto";
  // The job token. Empty: one is generated (one host only; several hosts must share one). Never
  // printed, and never on a process's command line.
  std::string token;
  // After a worker fails, the others get this long to fail on their own (a peer's death usually
  // fails their collectives within milliseconds, and their messages say what they saw), then
  // SIGTERM, then after the same again SIGKILL. Also how long node 0 keeps the store up for the
  // other nodes after its own workers are done.
  std::chrono::milliseconds grace = std::chrono::seconds(5);
  // What the workers run: `program` (a path; empty: this executable, /proc/self/exe) with
  // `worker_args` as its command line (argv[0] first, without the launcher's options).
  std::string program;
  std::vector<std::string> worker_args;
  // Ranks whose failure the job survives (a parameter-server job's workers other than rank 0
  // under asp or ssp): the launcher reports it and lets the others go on.
  std::vector<int> expendable_ranks = {};
  // Ranks the launcher starts again when they fail (a parameter server under asp or ssp, which
  // comes back from its checkpoint), at most `max_restarts` times in all; the new process gets
  // TESSERA_RESTART=<how many restarts so far>.
  std::vector<int> restartable_ranks = {};
  int max_restarts = 0;
  // An elastic job (run_elastic_agent): the job takes min_nnodes .. nnodes hosts, this one
  // min_nproc .. nproc workers, and after a failure (at most max_restarts times) or when a host
  // joins, every agent still alive runs a new rendezvous round and the workers start again from
  // the newest checkpoint. Node ranks come from the rendezvous (node_rank is not used).
  bool elastic = false;
  int min_nproc = 1;
  int min_nnodes = 1;
  // How long a round waits for more hosts once min_nnodes have come, and for min_nnodes at all.
  std::chrono::milliseconds rdzv_wait = std::chrono::seconds(5);
  std::chrono::milliseconds rdzv_timeout = std::chrono::seconds(300);
  // Worker processes an elastic agent keeps started, data loaded, standing by for a failed
  // worker's place (TESSERA_SPARE=1 in their environment).
  int spares = 0;
};

// The launcher of `tessera train --nproc N` and `tessera launch`: hosts the rendezvous store (node
// 0), starts `nproc` workers with their rank, local rank, world size, store address and token in
// the environment (and a job id, TESSERA_JOB_ID, that names the job's shared memory instead of the
// token), prefixes each line they print with "[rank R] " (stdout to stdout, stderr to
// stderr), forwards SIGINT and SIGTERM to them (a second one kills them), and when one fails stops
// the others (unless its rank is expendable). Returns the exit code for the process: 0 when every
// worker exited 0, else the first failed worker's exit code (128 + signal when a signal ended it),
// or 128 + the signal that interrupted the launcher; a summary on stderr then says which rank
// failed how and its last line. Removes /dev/shm/tessera-<job id>* before returning (what crashed
// workers' shared memory left). Throws ConfigError on inconsistent options, CommError or
// TimeoutError when the store cannot be hosted or reached, Error when workers cannot be started.
// Call from the main thread before any other thread exists: it blocks SIGINT, SIGTERM and SIGCHLD
// in the calling thread (restored on return) so that every thread it starts leaves them to it.
[[nodiscard]] int run_launcher(const LaunchOptions& options);

// run_launcher for an elastic job (options.elastic): this host's agent. It hosts the rendezvous
// store when --rdzv names an address of this host that is free (else connects to it; on one host
// without --rdzv, loopback on a free port), and then, round after round: joins the rendezvous,
// starts its workers with TESSERA_ATTEMPT=<round> and TESSERA_ELASTIC=1 (a worker of a round after
// the first resumes from the newest checkpoint), and watches them and the store. A worker's
// failure ends the round on every host; a worker that exits 2 (a configuration error) ends the
// job. After a failure, a host with more than min_nproc workers offers one fewer (the failed
// worker's place). Returns 0 when the job finished, else what run_launcher returns.
[[nodiscard]] int run_elastic_agent(const LaunchOptions& options);

}  // namespace tessera::cli
