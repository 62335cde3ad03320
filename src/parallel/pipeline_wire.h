#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "tessera/tensor/tensor.h"

namespace tessera::parallel {

// What a pipeline stage sends ahead of a tensor whose shape its neighbour cannot know (the
// activations of a micro-batch): {dtype, rank, dims...}.
inline constexpr size_t kMaxTensorRank = 6;
using TensorHeader = std::array<int64_t, 2 + kMaxTensorRank>;

// Throws ValueError for a tensor of more than kMaxTensorRank dimensions.
[[nodiscard]] TensorHeader header_of(const Tensor& t);

struct TensorSpec {
  Shape shape;
  DType dtype;
};
// The shape and dtype `header` announces. A header no stage sends (an unknown dtype, a rank or a
// size out of range, more bytes than this machine's memory) throws CommError naming stage `peer`
// of `group`.
[[nodiscard]] TensorSpec decode_header(const TensorHeader& header, int peer,
                                       const std::string& group);

}  // namespace tessera::parallel
