#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/nn/module.h"
#include "tessera/optim/optimizer.h"

namespace tessera::parallel {

using autograd::Variable;

// ZeRO stage 3 (Rajbhandari et al.; PyTorch's FSDP): the parameters themselves sharded over the
// ranks of a group, with their gradients and optimizer state. A model is a sequence of units
// (its layers), each gathered whole only while it computes:
//
//   forward   unit i gathered (allgather of every rank's shard), the gather of unit i+1 started
//             so that it overlaps unit i's compute; unit i runs; its memory is freed
//   backward  unit i gathered again just before its backward (unit i-1's gather started); once
//             its backward is done, its gradients are summed into each rank's shard of them
//             (reduce-scatter, overlapping the backward of the units before) and freed
//
// Each rank trains on its own shard of the global batch, as with DDP; the gradients are averaged
// over the ranks, so an optimizer over shards() steps exactly as one process on the global batch.
// A rank holds 1/N of every unit's parameters, gradients and optimizer state, plus the units
// gathered at the moment (two at most, and a unit another uses: an embedding whose table a tied
// head reads stays gathered from its forward to the end of backward).
//
// A unit's parameters are views into one flat buffer whose memory (Storage::release) exists only
// while the unit is gathered: backward keeps the views it saved and finds the memory there again.
// Not thread-safe; one per rank, every rank adding the same units and running the same steps.
// Borrows the group and the units.
class FullyShardedModel {
 public:
  explicit FullyShardedModel(comm::ProcessGroup& group);
  // Waits for gathers and reductions in flight; never throws.
  ~FullyShardedModel();
  FullyShardedModel(const FullyShardedModel&) = delete;
  FullyShardedModel& operator=(const FullyShardedModel&) = delete;

  // Appends a unit: lays its parameters out in one flat buffer, keeps this rank's shard of it and
  // frees the rest. The units run in the order added.
  void add(nn::Module& unit);
  [[nodiscard]] size_t size() const { return units_.size(); }
  // What the optimizer updates: this rank's shard of each unit that has parameters.
  [[nodiscard]] std::vector<Variable> shards() const;

  // The units in order on `input`, each gathered as above; with gradients on, the result's
  // backward gathers and reduces as above.
  [[nodiscard]] Variable forward(const Variable& input);
  // After backward: finishes every reduction, leaves each shard's gradient (the mean over the
  // ranks) and frees every unit still gathered.
  void finish_backward();

  // Gathers unit `unit` (collective) and leaves it so until release(): its parameters' values are
  // the whole model's (a checkpoint reads them).
  void gather(size_t unit);
  void release(size_t unit);
  // This rank's shard of the unit's parameters (undefined for a unit without any).
  [[nodiscard]] Variable shard(size_t unit) const;
  // The unit's flat buffer put together from every rank's `values` (a tensor of the shape of its
  // shard: the shard's optimizer state). Collective.
  [[nodiscard]] Tensor gather_flat(size_t unit, const Tensor& values) const;
  // Parameter `index` of the unit (its shape) in such a flat buffer, as a view.
  [[nodiscard]] Tensor parameter_in(size_t unit, size_t index, const Tensor& flat) const;
  // Copies the part of `value` (parameter `index` of the unit, or a tensor of its shape) that
  // lies in this rank's shard into `shard` (a tensor of the shard's shape).
  void copy_to_shard(size_t unit, size_t index, const Tensor& value, Tensor& shard) const;

 private:
  struct Unit;
  void start_gather(size_t unit);
  void reduce(size_t unit);
  // Finishes the unit's reduction: its shard's gradient, averaged.
  void settle(size_t unit);
  // The next unit after (before) `unit` with parameters, or size().
  [[nodiscard]] size_t next_with_parameters(size_t unit) const;
  [[nodiscard]] size_t previous_with_parameters(size_t unit) const;
  void before_backward(size_t unit);

  comm::ProcessGroup& group_;
  std::vector<std::unique_ptr<Unit>> units_;
  size_t in_flight_ = SIZE_MAX;  // the unit whose reduction may be running, or >= size()
};

}  // namespace tessera::parallel
