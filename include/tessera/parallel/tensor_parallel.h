#pragma once

#include <memory>

#include "tessera/comm/process_group.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/nn/transformer.h"
#include "tessera/parallel/parameter_split.h"

namespace tessera::parallel {

using autograd::Variable;

// Tensor parallelism as Megatron-LM pairs it: a column-parallel Linear (each rank computes a slice
// of the outputs) feeding a row-parallel one (each rank takes its slice of the inputs, and the
// partial products are summed), so that a block costs one allreduce forward and one backward.
// Every rank of `group` runs the same layers on the same (replicated) input; each holds 1/T of the
// split weights. The layers are made from the whole layer one process would have, so a split
// model starts, and computes, exactly as the whole one. Borrow the group.

// Megatron's f: the identity forward; backward, the gradient summed over the group. Where a
// replicated activation enters column-parallel layers (each rank's slice contributes to it).
[[nodiscard]] Variable copy_to_tensor_parallel(const Variable& x, comm::ProcessGroup& group);
// Megatron's g: summed over the group forward; the identity backward. Where row-parallel partial
// outputs become the whole output.
[[nodiscard]] Variable reduce_from_tensor_parallel(const Variable& x, comm::ProcessGroup& group);

// y = x W_r^T + b_r on [..., in]: rank r's rows of the whole layer's weight (its slice of the
// outputs). With `parts` > 1 the outputs are that many blocks laid end to end (attention's query,
// key and value) and rank r takes its slice of each. Throws ValueError when the group's size does
// not divide each block.
class ColumnParallelLinear : public nn::Module, public SplitLayer {
 public:
  ColumnParallelLinear(const nn::Linear& whole, comm::ProcessGroup& group, int64_t parts = 1);
  // A head tied to a VocabParallelEmbedding: `rows`, this rank's slice of the token table, is the
  // weight (owned by the embedding, not registered here) and there is no bias.
  ColumnParallelLinear(Variable rows, comm::ProcessGroup& group);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  ParameterSplits parameter_splits() const override;

 private:
  comm::ProcessGroup& group_;
  int64_t parts_ = 1;
  Variable weight_, bias_;
};

// y = sum over ranks of x_r W_r^T, plus b: rank r takes its slice of the inputs (the output of
// its column-parallel partner) and its columns of the whole weight; the bias, whole on every
// rank, is added once after the sum.
class RowParallelLinear : public nn::Module, public SplitLayer {
 public:
  RowParallelLinear(const nn::Linear& whole, comm::ProcessGroup& group);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  ParameterSplits parameter_splits() const override;

 private:
  comm::ProcessGroup& group_;
  Variable weight_, bias_;
};

// nn::TransformerBlock split over the group: the attention's heads and the MLP's hidden units
// dealt to the ranks (query, key and value projections column-parallel, the output projections
// row-parallel), the LayerNorms whole on every rank. Two allreduces forward, two backward. Throws
// ValueError when the group's size does not divide the heads and the hidden width.
class TensorParallelTransformerBlock : public nn::Module, public SplitLayer {
 public:
  TensorParallelTransformerBlock(const nn::TransformerBlock& whole, comm::ProcessGroup& group);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  ParameterSplits parameter_splits() const override;

 private:
  int64_t heads_;  // this rank's
  bool causal_;
  std::shared_ptr<nn::LayerNorm> ln1_, ln2_;
  std::shared_ptr<ColumnParallelLinear> qkv_, fc_;
  std::shared_ptr<RowParallelLinear> attention_proj_, proj_;
};

}  // namespace tessera::parallel
