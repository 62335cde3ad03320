#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/nn/module.h"

namespace tessera::parallel {

// How gradients travel: float32, or rounded to 16 bits on the wire (half the bytes) and summed
// in float32.
enum class GradCompression { kNone, kBFloat16, kFloat16 };

struct DdpOptions {
  // Gradients are grouped into buckets of about this many bytes, in reverse order of
  // registration (roughly the order backward produces them); each bucket is allreduced as soon as
  // all its gradients are ready, while backward goes on.
  std::size_t bucket_bytes = 25 << 20;
  // Smaller first bucket: communication starts before backward is half done.
  std::size_t first_bucket_bytes = 1 << 20;
  // Parameters that get no gradient in a step: false makes that an error naming them (the usual
  // cause is a bug); true treats their gradient as zero.
  bool find_unused_parameters = false;
  GradCompression compression = GradCompression::kNone;
};

// Per-step timings and traffic, for seeing whether communication is hidden under backward.
struct DdpStats {
  double wait_seconds = 0.0;  // blocked in synchronize() waiting for allreduces
  // Communication time (first bucket launched to last one done) spent while backward still ran:
  // 1 means fully hidden under backward, 0 fully exposed.
  double hidden_fraction = 0.0;
  std::size_t bytes_sent = 0;  // gradient bytes handed to allreduce this step
  int buckets = 0;
};

// Data parallelism over a ProcessGroup, as PyTorch's DistributedDataParallel: every rank holds a
// replica of the module; construction checks that all ranks built the same model (same parameter
// names, shapes and dtypes, else an Error naming the first difference and the ranks) and copies
// rank 0's parameters and buffers to all; after backward, synchronize() leaves every parameter's
// gradient averaged over the ranks. Training on N ranks with per-rank batch B then matches one
// process on the global batch N*B (the loss being a mean over the batch).
//
//   DistributedDataParallel ddp(model, group, {});
//   loss = loss_fn(model(x), y); loss.backward(); ddp.synchronize(); optimizer.step();
//
// Gradient accumulation: call set_sync(false) for the first k-1 micro-steps (gradients accumulate
// locally, nothing is sent) and set_sync(true) before the last one's backward.
// Borrows the model and the group (they must outlive it). Not thread-safe; one per rank.
class DistributedDataParallel {
 public:
  DistributedDataParallel(nn::Module& model, comm::ProcessGroup& group, DdpOptions options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // Whether the next backward communicates (true by default).
  void set_sync(bool sync) { sync_ = sync; }
  [[nodiscard]] bool sync() const { return sync_; }

  // Waits for the buckets still in flight (each within the group's timeout), averages and writes
  // the gradients back to the parameters. With sync off it does nothing. Throws Error naming the
  // parameters that received no gradient (unless find_unused_parameters), and the group's errors
  // (TimeoutError naming the ranks that did not arrive).
  void synchronize();

  // Copies rank 0's parameters and buffers to every rank (done once at construction).
  void broadcast_state();

  [[nodiscard]] const DdpStats& stats() const { return stats_; }
  [[nodiscard]] int num_buckets() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket;
  void on_gradient_ready(std::size_t param_index);
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  void reset_step();

  nn::Module& model_;
  comm::ProcessGroup& group_;
  DdpOptions options_;
  std::vector<std::string> names_;
  std::vector<autograd::Variable> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  // For each parameter: its bucket and offset (elements) in the bucket.
  std::vector<std::pair<std::size_t, std::size_t>> slots_;
  std::vector<int> hook_ids_;
  std::vector<bool> ready_;
  std::size_t next_launch_ = 0;
  std::chrono::steady_clock::time_point first_launch_;
  bool sync_ = true;
  DdpStats stats_;
};

}  // namespace tessera::parallel
