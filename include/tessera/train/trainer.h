#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/data/dataset.h"
#include "tessera/nn/module.h"
#include "tessera/train/config.h"
#include "tessera/train/memory_copy.h"

namespace tessera::data {
struct SamplerState;
}

namespace tessera::train {

struct Checkpoint;

struct TrainerOptions {
  // The ranks training together, or nullptr for one process. [parallel] strategy says how they
  // share the work (none, ddp, zero: the rank and size shard the data, and gradients are
  // combined over the group). Borrowed: must outlive the Trainer.
  comm::ProcessGroup* group = nullptr;
  // Continue from the newest valid checkpoint in rank 0's <run_dir>/checkpoints (start afresh
  // when it has none). Rank 0 sends it to every rank, so the other ranks' run directories (on
  // other machines, say) need not hold it; a rank that cannot load it fails the run on every rank.
  bool resume = false;
  // Where progress goes (rank 0 only); nullptr: nowhere.
  std::FILE* progress = stderr;
  // Called with every batch this rank trains on, before its step (to record what was seen).
  std::function<void(const data::Batch&)> on_batch = nullptr;
  // Called once with the step training starts from (0, or the checkpoint's when resuming), then
  // after every step with the steps done (an elastic job's agents learn from it how far it got).
  std::function<void(int64_t)> on_step = nullptr;
  // strategy "ps": the job token the parameter servers check (ServeOptions::job_token; empty:
  // rank 0's, sent over the group).
  std::string job_token = {};
  // strategy "ps" under asp or ssp: this process is worker `rejoin_rank` of a job of
  // `rejoin_world_size` processes, started again by the launcher after it died (TESSERA_RESTART).
  // It joins no group (the others are past that; `group` stays null): it finds the servers in
  // <run_dir>/ps/server-<i>.address, proves job_token, and trains its old share of the data from
  // the step the servers last had from it. -1: not a restarted worker.
  int rejoin_rank = -1;
  int rejoin_world_size = 0;
  // An elastic worker's state kept across its groups (memory_copy.h), or nullptr. The Trainer
  // refreshes its copy every train.memory_copy_every steps and, resuming, goes on from the newest
  // copy any rank holds when it is at least as new as rank 0's newest checkpoint.
  MemoryCopy* memory = nullptr;
};

// Opens the config's data sets into `memory`, unless it holds them already: a spare worker of an
// elastic job does so before it has a place and a Trainer.
void open_data_sets(const Config& config, MemoryCopy& memory);

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t count = 0;
  int64_t classes = 0;
  // confusion[true * classes + predicted]
  std::vector<int64_t> confusion;
};

struct TrainResult {
  int64_t steps = 0;
  int world_size = 1;
  int64_t epochs = 0;
  EvalResult test;          // the last evaluation (count 0 when there is no test set)
  double train_loss = 0.0;  // mean over the last epoch's steps and every rank's batches
  double wall_seconds = 0.0;
  double samples_per_s = 0.0;  // training throughput over the run, all ranks together
  // Time training stood still for checkpoints (with train.async_checkpoint: for the snapshots).
  double checkpoint_seconds = 0.0;
  // ... and for the memory copies of an elastic job (TrainerOptions::memory).
  double memory_copy_seconds = 0.0;
  std::string last_checkpoint;
};

// Evaluates a classifier on a dataset in evaluation mode without recording gradients:
// mean cross-entropy, accuracy and confusion matrix; with `next_token`, a language model on text
// windows, every position's prediction of the next token counted (loss.h, model_io).
[[nodiscard]] EvalResult evaluate(nn::Module& model, data::Dataset& dataset, int64_t batch_size,
                                  int64_t classes, bool next_token = false);
// Collective: evaluate() with the samples shared among the group's ranks (each sample evaluated
// by exactly one rank) and the sums reduced, so every rank returns the whole dataset's result.
[[nodiscard]] EvalResult evaluate_sharded(nn::Module& model, data::Dataset& dataset,
                                          int64_t batch_size, int64_t classes,
                                          comm::ProcessGroup& group, bool next_token = false);

// Runs a training job from a Config: builds the data sets, model, optimizer and schedule, trains
// for the configured epochs on this rank's shard, evaluates on the test set after each epoch,
// writes metrics as JSON lines to <run_dir>/metrics.jsonl, shows progress, and checkpoints to
// <run_dir>/checkpoints every train.checkpoint_every steps and at each epoch's end (keeping the
// newest train.keep_checkpoints). A resumed run continues bit for bit where the checkpoint was
// taken: model, optimizer, schedule, sampler position and random state are restored.
// Not thread-safe; one per process.
class Trainer {
 public:
  Trainer(Config config, TrainerOptions options);
  ~Trainer();
  TrainResult run();
  [[nodiscard]] nn::Module& model();
  // The step run() starts at: 0, or for a restarted parameter-server worker (rejoin_rank) the
  // step its servers last had from it.
  [[nodiscard]] int64_t first_step() const;
  [[nodiscard]] const Config& config() const { return config_; }

 private:
  struct State;
  // Collective: loads rank 0's newest valid checkpoint on every rank; where the data stands
  // ({0, 0} when there is none).
  data::SamplerState resume();
  // Where a worker started again after it died goes on: step `step` of the run (the schedule
  // advanced to it) and that step's place in the data.
  data::SamplerState rejoin_at(int64_t step);
  data::SamplerState load_checkpoint(const Checkpoint& checkpoint);
  // The data sets of the config, or those options.memory holds (kept there when it holds none).
  void open_data_sets();
  // The newest memory copy any rank holds, and the step of rank 0's newest checkpoint file.
  struct NewestCopy {
    int64_t step = -1;     // none
    int64_t on_disk = -1;  // none
    // senders[i]: the rank that sends piece i of the copy (one piece: the copy is kept whole).
    std::vector<int> senders;
  };
  // Collective: finds the newest memory copy.
  NewestCopy newest_memory_copy();
  // Collective: loads the copy (its holders send it).
  data::SamplerState resume_from_memory(const NewestCopy& copy);
  // Collective: refreshes every rank's memory copy to the state at `at`.
  void keep_memory_copy(data::SamplerState at);
  // Collective where the strategy's state is spread: the training state at `at` as a checkpoint,
  // complete on the process that reports, empty elsewhere.
  Checkpoint snapshot(data::SamplerState at);
  // Collective where the strategy's state is spread (ZeRO gathers its shards); rank 0 writes. The
  // file's path on rank 0, else "".
  std::string save_checkpoint(data::SamplerState at);
  Config config_;  // as trained: with data.batch_per_worker, the global batch and scaled lr
  std::string written_config_;  // as written (checkpoints keep it)
  TrainerOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace tessera::train
