#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/tensor/tensor.h"

namespace tessera::parallel {

// How a parameter of a tensor-parallel layer lies over the ranks of its group: whole on every
// rank, or cut along `dim` into equal slices, rank r holding slice r of each of `parts` equal
// blocks (a fused query-key-value weight is three blocks, each dealt out by heads).
struct ParameterSplit {
  int dim = -1;  // -1: whole on every rank
  int64_t parts = 1;
};

// A layer's split parameters by name (as its named_parameters() gives them); every other
// parameter is whole on each rank.
using ParameterSplits = std::map<std::string, ParameterSplit>;

// A layer whose parameters are split over a group (tensor_parallel.h, vocab_parallel.h): how to
// put the whole layer's parameters back together, and to cut them again.
class SplitLayer {
 public:
  SplitLayer() = default;
  SplitLayer(const SplitLayer&) = delete;
  SplitLayer& operator=(const SplitLayer&) = delete;
  virtual ~SplitLayer() = default;
  [[nodiscard]] virtual ParameterSplits parameter_splits() const = 0;
};

// Rank `rank` of `ways`'s part of `whole`, in a new tensor. Throws ValueError when `ways` does not
// divide each block.
[[nodiscard]] Tensor slice_for_rank(const Tensor& whole, ParameterSplit split, int rank, int ways);

// The whole tensor from every rank's part of it (collective over `group`; every rank gets it).
[[nodiscard]] Tensor gather_slices(const Tensor& part, ParameterSplit split,
                                   comm::ProcessGroup& group);

}  // namespace tessera::parallel
