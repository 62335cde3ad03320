#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/train/config.h"

// [parallel] strategy = "ps": of a job's N processes the last `servers` hold the model in shards
// (this file) and the first N - servers train as workers (the Trainer, through its ps strategy).
// Both sides start together: the servers' addresses reach the workers over the job's group, once;
// after that nothing is collective, so a worker may die (asp, ssp) without stopping the others.
namespace tessera::train {

// True when `rank` of a job of `world_size` processes is a parameter server under `config`.
[[nodiscard]] bool is_parameter_server(const Config& config, int rank, int world_size);

// The ranks whose death a job of `world_size` processes survives: under strategy "ps" with asp
// or ssp, every worker but rank 0 (which writes metrics and checkpoints). Empty otherwise.
[[nodiscard]] std::vector<int> expendable_ranks(const Config& config, int world_size);

// The ranks a launcher may start again when they die (--max-restarts), under asp and ssp: the
// servers (from their checkpoints) and the workers, rank 0 too (from their servers' step, with
// their old share of the data; sparse models' workers not yet). Empty otherwise.
[[nodiscard]] std::vector<int> restartable_ranks(const Config& config, int world_size);

struct ServeOptions {
  // The address this server listens on and the workers reach it at.
  std::string host = "127.0.0.1";
  // The job token: only processes holding it may push or pull. Empty: rank 0 makes one and
  // sends it to the others over the group (give it where the group itself is not private).
  std::string job_token = {};
  std::FILE* log = stderr;  // one line when listening, one when done, and what the server drops
  // Start from the servers' checkpoint of the step the workers resume from (the run's newest
  // valid checkpoint, as Trainer::resume picks it); afresh when the run has none.
  bool resume = false;
  // The launcher starts dead workers again (--max-restarts): a worker the server lost has
  // [parallel] heartbeat_timeout_s to come back before the job may end without it.
  bool workers_restarted = false;
  // Told of each worker (its rank) the server declared lost for sending not even a heartbeat.
  std::function<void(int rank)> on_hung = nullptr;
};

// Runs this process as its parameter server: builds the model from the config (the same seed
// gives every process the same starting values), holds its shard of it, and serves the workers
// until every one is done. Throws CommError when a synchronous (bsp) job lost a worker, and
// TimeoutError when the workers are silent for longer than [parallel] timeout_s.
// Every [parallel] server_checkpoint_s it checkpoints its shard to <run_dir>/ps/server-<i>.ckpt.
void serve_parameters(const Config& config, comm::ProcessGroup& world, const ServeOptions& options);

// Runs rank `rank` of a job of `world_size` processes as the parameter server it was before it
// died: from its checkpoint, on the address it had (<run_dir>/ps/server-<i>.address), without
// joining the job's group (the others are past that). options.job_token must be the job's.
// Throws FormatError when the checkpoint is missing or damaged, ValueError under bsp.
void restart_parameter_server(const Config& config, int rank, int world_size,
                              const ServeOptions& options);

// Whether every server of the job finished serving (a worker started again after that has
// nothing to do): each notes it in <run_dir>/ps/server-<i>.done, which a job's servers remove as
// they start.
[[nodiscard]] bool parameter_servers_finished(const Config& config);

}  // namespace tessera::train
