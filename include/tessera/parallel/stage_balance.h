#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace tessera::parallel {

// Cuts layers of the given costs, in order, into `stages` contiguous non-empty runs so that the
// costliest run costs as little as possible (the pipeline's pace is its slowest stage). Returns
// stages + 1 boundaries: stage s has layers [b[s], b[s + 1]). Throws Error when there are fewer
// layers than stages or a cost is negative or not finite.
[[nodiscard]] std::vector<size_t> balance_stages(std::span<const double> costs, int stages);

// The boundaries of layers cut before each of `cuts` (ascending, each in [1, layers - 1]): the
// config's own split. Throws Error naming the cut that is out of order or out of range.
[[nodiscard]] std::vector<size_t> stage_boundaries(size_t layers, std::span<const int64_t> cuts);

}  // namespace tessera::parallel
