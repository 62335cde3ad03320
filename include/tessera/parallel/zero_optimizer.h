#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/nn/module.h"
#include "tessera/optim/optimizer.h"

namespace tessera::parallel {

struct ZeroOptions {
  // 1: optimizer state sharded, gradients allreduced whole in step(); 2: gradients also sharded,
  // reduced to their shard's rank bucket by bucket during backward, so each rank keeps only its
  // shard of the averaged gradient.
  int stage = 1;
  // Clip the global gradient norm to this before the update (0: off); computed across shards.
  double max_grad_norm = 0.0;
  // Stage 2: gradient buckets of about this many bytes, in reverse order of registration (as
  // DdpOptions); each is reduced as soon as all its gradients are final.
  std::size_t bucket_bytes = 25 << 20;
  // Smaller first bucket: communication starts before backward is half done.
  std::size_t first_bucket_bytes = 1 << 20;
};

// ZeRO stage 1 and 2 data parallelism (Rajbhandari et al.): every rank holds the whole model, but
// optimizer state (and with stage 2 the averaged gradient) only for its 1/N slice of the
// parameters. The parameters are laid out in one flat float32 buffer (the model's parameters
// become views into it); the gradients are summed across ranks, an ordinary optimizer updates this
// rank's slice with their average, and step() allgathers the slices so every rank has the new
// parameters. The result equals plain data parallelism (and one process on the global batch); the
// state is 1/N the size.
//
// Stage 2 sums gradients while backward runs: a hook takes each parameter's gradient the moment
// it is final, copies it into its bucket and drops it; when a bucket is complete, each rank's
// part of it is reduced to that rank (into its gradient shard), and the bucket's memory is freed
// once the reductions are done. Between steps a rank holds its gradient shard and no parameter
// holds a gradient. One backward per step: a second gradient for a parameter before step() is an
// error (accumulate over micro-batches in the loss instead).
//
//   ZeroOptimizer zero(model, group, [](auto params) { return make_adam(params); }, {.stage = 2});
//   zero.zero_grad(); loss.backward(); zero.step();
//
// Construction checks that all ranks built the same model and copies rank 0's parameters.
// Borrows the model and the group. Not thread-safe; one per rank.
class ZeroOptimizer {
 public:
  using Factory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<autograd::Variable>)>;

  ZeroOptimizer(nn::Module& model, comm::ProcessGroup& group, const Factory& make_optimizer,
                ZeroOptions options = {});
  // Waits for reductions in flight (their buffers must outlive them); never throws.
  ~ZeroOptimizer();
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  // Averages the gradients over the ranks (stage 2: finishes the reductions backward started),
  // updates this rank's shard, allgathers parameters. Parameters without a gradient count as
  // zero gradient.
  void step();
  // Drops the gradients (stage 2: after waiting for reductions in flight).
  void zero_grad();

  // The optimizer over this rank's shard (for learning-rate schedules).
  [[nodiscard]] optim::Optimizer& inner() { return *inner_; }
  // Bytes of optimizer state this rank holds.
  [[nodiscard]] int64_t state_bytes() const;
  // This rank's slice of the flat parameter vector: [begin, end).
  [[nodiscard]] int64_t shard_begin() const { return shard_begin_; }
  [[nodiscard]] int64_t shard_end() const { return shard_end_; }
  [[nodiscard]] int64_t total_size() const { return total_; }
  // Stage 2: gradient buckets (0 with stage 1).
  [[nodiscard]] int num_buckets() const { return static_cast<int>(buckets_.size()); }

  // This rank's optimizer state, with its shard's place in the whole (for sharded checkpoints).
  [[nodiscard]] std::string save_shard() const;
  // Restores the state from the shards written by save_shard() on any number of ranks (`shards`:
  // every rank's bytes, in rank order): the state is re-sharded to this group's layout. Throws
  // FormatError when the shards do not cover the parameters or were written by another optimizer.
  void load_shards(const std::vector<std::string>& shards);

 private:
  struct Bucket;
  // Stage 2.
  void plan_reductions();
  void on_gradient_ready(std::size_t param_index);
  // Writes parameter i's gradient (zeros when undefined) into its bucket.
  void write_gradient(std::size_t i, const Tensor& grad);
  void launch_ready_buckets();
  // Frees the buffers of launched buckets whose reductions are done; with `wait`, waits for all.
  void retire_buckets(bool wait);
  void reset_step();
  // Sums this rank's shard of the gradient over the ranks into a new tensor (stage 1).
  Tensor allreduce_gradient();

  nn::Module& model_;
  comm::ProcessGroup& group_;
  ZeroOptions options_;
  std::vector<autograd::Variable> params_;
  int64_t total_ = 0;       // parameters, unpadded
  int64_t shard_size_ = 0;  // padded: total_ <= shard_size_ * ranks
  int64_t shard_begin_ = 0;
  int64_t shard_end_ = 0;
  Tensor flat_params_;  // [shard_size_ * ranks]; the model's parameters are views into it
  Tensor staging_;      // [shard_size_]: this rank's shard, input of the allgather
  autograd::Variable shard_;
  std::unique_ptr<optim::Optimizer> inner_;
  // Stage 2.
  Tensor grad_shard_;             // [shard_end_ - shard_begin_]: this rank's summed gradient
  std::vector<int64_t> offsets_;  // each parameter's place in the flat vector
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::size_t> bucket_of_;
  std::vector<bool> ready_;
  std::size_t next_launch_ = 0;
  std::vector<int> hook_ids_;
};

}  // namespace tessera::parallel
