#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "launcher.h"
#include "worker_process.h"

namespace tessera::cli {

// Where this host's workers sit in the job: ranks first_rank .. first_rank + nproc - 1 of
// world_size, on node node_rank of nnodes; `attempt` names their store keys (TESSERA_ATTEMPT:
// each round of an elastic job is a new attempt).
struct Placement {
  int first_rank = 0;
  int nproc = 1;
  int world_size = 1;
  int node_rank = 0;
  int nnodes = 1;
  std::int64_t attempt = 0;
};

// What a worker gets from the launcher besides its placement.
struct WorkerContext {
  std::string store_address;
  std::string token;
  std::string job_id;
  // Extra NAME=VALUE entries (TESSERA_RESTART, TESSERA_ELASTIC).
  std::vector<std::string> extra = {};
  // Give each worker a channel to the agent (agent_channel.h), named by TESSERA_AGENT_FD.
  bool channel = false;
};

// The launcher's environment, less any variable the launcher sets, plus the worker's rank,
// local rank, world size, store, token, job id and backend.
[[nodiscard]] std::vector<std::string> worker_environment(const LaunchOptions& o,
                                                          const Placement& p, const Worker& w,
                                                          const WorkerContext& c);

// Starts this host's workers of local ranks first_local .. p.nproc - 1 (the others are already
// running), or none: on a failure the workers already started are killed (half a job is no job:
// they would wait for the others until their timeout).
[[nodiscard]] std::vector<Worker> start_workers(const LaunchOptions& o, const Placement& p,
                                                const WorkerContext& c, const SignalScope& signals,
                                                int first_local = 0);

// Starts `count` spares of an elastic job (Worker::spare): workers that load their data and stand
// by, in no round, until the agent places them (agent_channel.h).
[[nodiscard]] std::vector<Worker> start_spares(const LaunchOptions& o, const Placement& p,
                                               const WorkerContext& c, const SignalScope& signals,
                                               int count);

// Removes /dev/shm/tessera-<job id>* now and when destroyed, however the launcher returns: the
// shared-memory backend names its segments so, and a worker that crashed cannot remove its own.
class ShmCleanup {
 public:
  explicit ShmCleanup(std::string job_id) : prefix_("tessera-" + std::move(job_id)) {}
  ShmCleanup(const ShmCleanup&) = delete;
  ShmCleanup& operator=(const ShmCleanup&) = delete;
  ~ShmCleanup() { remove_now(); }
  void remove_now() const noexcept;

 private:
  std::string prefix_;
};

}  // namespace tessera::cli
