#include "tessera/parallel/parameter_split.h"

#include "tessera/core/error.h"
#include "tessera/parallel/dtype_map.h"

namespace tessera::parallel {
namespace {

// The length of one rank's slice of one block along the split dimension.
int64_t slice_length(const Shape& whole, ParameterSplit split, int ways) {
  if (split.dim < 0 || split.dim >= static_cast<int>(whole.size()) || split.parts < 1) {
    throw ValueError(detail::concat("parameter split: dimension ", split.dim, " in ", split.parts,
                                    " blocks does not fit a tensor of shape ", shape_str(whole)));
  }
  const int64_t size = whole[static_cast<size_t>(split.dim)];
  if (size % (split.parts * ways) != 0) {
    throw ValueError(detail::concat("tensor parallel: ", size, " (", split.parts,
                                    " blocks) does not divide among ", ways, " ranks"));
  }
  return size / split.parts / ways;
}

}  // namespace

Tensor slice_for_rank(const Tensor& whole, ParameterSplit split, int rank, int ways) {
  if (split.dim < 0) return whole.clone();
  const int64_t mine = slice_length(whole.shape(), split, ways);
  const int64_t block = mine * ways;
  Shape shape = whole.shape();
  shape[static_cast<size_t>(split.dim)] = mine * split.parts;
  Tensor out = Tensor::empty(shape, whole.dtype());
  for (int64_t p = 0; p < split.parts; ++p) {
    const int64_t from = p * block + rank * mine;
    out.slice(split.dim, p * mine, (p + 1) * mine)
        .copy_from(whole.slice(split.dim, from, from + mine));
  }
  return out;
}

Tensor gather_slices(const Tensor& part, ParameterSplit split, comm::ProcessGroup& group) {
  if (split.dim < 0) return part;
  const int ways = group.size();
  Shape stacked = part.shape();
  stacked.insert(stacked.begin(), ways);
  Tensor all = Tensor::empty(stacked, part.dtype());
  const Tensor mine = part.contiguous();
  group
      .allgather(mine.raw_data(), all.raw_data(), static_cast<size_t>(mine.numel()),
                 to_comm(mine.dtype()))
      ->wait();
  Shape shape = part.shape();
  shape[static_cast<size_t>(split.dim)] *= ways;
  const int64_t length = slice_length(shape, split, ways);
  Tensor whole = Tensor::empty(shape, part.dtype());
  for (int r = 0; r < ways; ++r) {
    const Tensor from = all.select(0, r);
    for (int64_t p = 0; p < split.parts; ++p) {
      const int64_t at = (p * ways + r) * length;
      whole.slice(split.dim, at, at + length)
          .copy_from(from.slice(split.dim, p * length, (p + 1) * length));
    }
  }
  return whole;
}

}  // namespace tessera::parallel
