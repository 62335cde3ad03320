#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "tessera/data/dataset.h"
#include "tessera/data/distributed_sampler.h"

namespace tessera::data {

struct DataLoaderOptions {
  int64_t batch_size = 64;
  // Drop this rank's last batch of an epoch when it is smaller than batch_size.
  bool drop_last_batch = false;
  // How many batches the background thread prepares ahead (the queue's bound). 0: no thread;
  // next() builds each batch on the caller's thread.
  int prefetch = 2;
  // next() waits at most this long for the background thread's next batch, then throws Error.
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
};

// Batches of this rank's indices (from a DistributedSampler) of a dataset, prepared on a
// background thread while the caller trains.
//
//   DistributedSampler sampler(dataset.size(), rank, world_size, {.seed = 1});
//   DataLoader loader(dataset, sampler, {.batch_size = 64});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.set_epoch(epoch);
//     while (std::optional<Batch> batch = loader.next()) { ... }
//   }
//
// Batches: x float32 [B, ...sample_shape], y int64 [B], in the sampler's order; the last batch
// of an epoch may be smaller unless drop_last_batch. The background thread starts on the first
// next() after construction, set_epoch() or set_state(), and runs up to `prefetch` batches ahead.
// An exception it meets (say a FormatError from a streaming dataset) is rethrown by next() in
// place of the batch that failed, after the batches before it; calling next() again retries that
// batch.
//
// Checkpoints: state() is the position of the next batch not yet returned by next(), counted in
// the epoch's order over all ranks (see SamplerState); batches prefetched but not returned are not
// counted, so set_state(state()) in a new loader yields exactly the batches this one had not yet
// returned, and the loaders of a run on another number of ranks, given that state, go on with
// exactly the rest of the epoch.
//
// Borrows the dataset: it must outlive the loader, and while the loader runs nothing else may
// call the dataset unless the dataset allows concurrent use. The destructor stops and joins the
// thread; it waits only for a read in progress to finish and never throws. Not thread-safe: one
// thread calls the loader's methods.
class DataLoader {
 public:
  // Throws ValueError when batch_size < 1, prefetch < 0, timeout <= 0, or the sampler's
  // dataset_size() differs from dataset.size().
  DataLoader(Dataset& dataset, DistributedSampler sampler, const DataLoaderOptions& options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch of this epoch, or nullopt when the epoch is over (and on every call after,
  // until set_epoch or set_state). Rethrows the background thread's exception; throws Error
  // naming the epoch and position when no batch arrives within options.timeout.
  [[nodiscard]] std::optional<Batch> next();

  // Starts epoch `epoch` from its first batch (discarding prefetched batches).
  void set_epoch(int64_t epoch);
  [[nodiscard]] int64_t epoch() const { return sampler_.epoch(); }
  // Position of the next batch not yet returned (see the class comment).
  [[nodiscard]] SamplerState state() const { return sampler_.state(); }
  // Continues from a saved state; throws ValueError as DistributedSampler::set_state does.
  void set_state(const SamplerState& state);

  // Batches per whole epoch on this rank.
  [[nodiscard]] int64_t num_batches() const;
  [[nodiscard]] const DistributedSampler& sampler() const { return sampler_; }
  [[nodiscard]] const DataLoaderOptions& options() const { return options_; }

 private:
  // Size of the batch starting at the sampler's position, 0 when the epoch has no more batches.
  [[nodiscard]] int64_t next_batch_size() const;
  void start();
  // Stops and joins the background thread and clears its queue. Never throws.
  void stop() noexcept;
  void produce(std::vector<int64_t> indices);

  Dataset& dataset_;
  // Consumer side: its position counts batches returned by next().
  DistributedSampler sampler_;
  DataLoaderOptions options_;

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_;  // a batch, the end or an error is available
  std::condition_variable space_;  // the queue has room, or stop_ is set
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool done_ = false;
  bool stop_ = false;
};

}  // namespace tessera::data
