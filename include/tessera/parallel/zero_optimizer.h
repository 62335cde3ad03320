#pragma once

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
  // 1: optimizer state sharded, gradients allreduced whole; 2: gradients reduce-scattered too, so
  // each rank keeps only its shard of the averaged gradient.
  int stage = 1;
  // Clip the global gradient norm to this before the update (0: off); computed across shards.
  double max_grad_norm = 0.0;
};

// ZeRO stage 1 and 2 data parallelism (Rajbhandari et al.): every rank holds the whole model, but
// optimizer state (and with stage 2 the averaged gradient) only for its 1/N slice of the
// parameters. The parameters are laid out in one flat float32 buffer (the model's parameters
// become views into it); step() averages the gradients across ranks, lets an ordinary optimizer
// update this rank's slice, and allgathers the slices so every rank has the new parameters.
// The result equals plain data parallelism (and one process on the global batch); the state is
// 1/N the size.
//
//   ZeroOptimizer zero(model, group, [](auto params) { return make_adam(params); }, {.stage = 2});
//   loss.backward(); zero.step(); zero.zero_grad();
//
// Construction checks that all ranks built the same model and copies rank 0's parameters.
// Borrows the model and the group. Not thread-safe; one per rank.
class ZeroOptimizer {
 public:
  using Factory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<autograd::Variable>)>;

  ZeroOptimizer(nn::Module& model, comm::ProcessGroup& group, const Factory& make_optimizer,
                ZeroOptions options = {});

  // Averages the gradients over the ranks, updates this rank's shard, allgathers parameters.
  // Parameters without a gradient count as zero gradient.
  void step();
  void zero_grad();

  // The optimizer over this rank's shard (for learning-rate schedules).
  [[nodiscard]] optim::Optimizer& inner() { return *inner_; }
  // Bytes of optimizer state this rank holds.
  [[nodiscard]] int64_t state_bytes() const;
  // This rank's slice of the flat parameter vector: [begin, end).
  [[nodiscard]] int64_t shard_begin() const { return shard_begin_; }
  [[nodiscard]] int64_t shard_end() const { return shard_end_; }
  [[nodiscard]] int64_t total_size() const { return total_; }

  // This rank's optimizer state, with its shard's place in the whole (for sharded checkpoints).
  [[nodiscard]] std::string save_shard() const;
  // Restores the state from the shards written by save_shard() on any number of ranks (`shards`:
  // every rank's bytes, in rank order): the state is re-sharded to this group's layout. Throws
  // FormatError when the shards do not cover the parameters or were written by another optimizer.
  void load_shards(const std::vector<std::string>& shards);

 private:
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
};

}  // namespace tessera::parallel
