#pragma once

#include "tessera/autograd/functions.h"
#include "tessera/autograd/variable.h"
#include "tessera/comm/process_group.h"
#include "tessera/nn/module.h"

namespace tessera::parallel {

// Differentiable allreduce: every rank gets the sum of x over the group's ranks, and backward
// sums the gradients arriving at the result over the ranks likewise (the adjoint of a sum over
// ranks). Collective in forward and in backward: every rank runs it, and its backward, in the
// same order relative to the group's other operations.
[[nodiscard]] autograd::Variable allreduce_sum(const autograd::Variable& x,
                                               comm::ProcessGroup& group);

// Batch statistics summed over every rank of `group`, for autograd::batch_norm.
[[nodiscard]] autograd::BatchStatsReduction batch_stats_over(comm::ProcessGroup& group);

// Makes every nn::BatchNorm in `model` normalise over the global batch, the union of the ranks'
// batches, as PyTorch's SyncBatchNorm does: N ranks then compute what one process computes on the
// global batch, running statistics included. Without it each rank normalises by its own batch and
// the result depends on the number of ranks. A training forward of each such layer allreduces its
// value count and two per-channel sums, its backward two more. Borrows the group: it must outlive
// the model's training.
void convert_sync_batchnorm(nn::Module& model, comm::ProcessGroup& group);

}  // namespace tessera::parallel
