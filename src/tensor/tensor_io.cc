#include "tessera/tensor/tensor_io.h"

#include <algorithm>

namespace tessera {
namespace {
constexpr uint32_t kMaxRank = 16;
constexpr int64_t kMaxElements = int64_t{1} << 40;
}  // namespace

void write_tensor(BinaryWriter& out, const Tensor& tensor) {
  Tensor c = tensor.contiguous();
  out.write_u32(static_cast<uint32_t>(c.dtype()));
  out.write_u32(static_cast<uint32_t>(c.dim()));
  for (int64_t s : c.shape()) out.write_i64(s);
  out.write_bytes(std::span(static_cast<const std::byte*>(c.raw_data()), c.nbytes()));
}

Tensor read_tensor(BinaryReader& in) {
  uint64_t at = in.offset();
  uint32_t code = in.read_u32();
  if (code > static_cast<uint32_t>(DType::kFloat16)) {
    throw FormatError(detail::concat(in.source(), ": at byte ", at, ": unknown dtype code ", code));
  }
  uint32_t rank = in.read_u32();
  if (rank > kMaxRank) {
    throw FormatError(detail::concat(in.source(), ": at byte ", at, ": tensor rank ", rank,
                                     " exceeds ", kMaxRank));
  }
  Shape shape(rank);
  for (auto& s : shape) {
    s = in.read_i64();
    if (s < 0 || s > kMaxElements) {
      throw FormatError(detail::concat(in.source(), ": at byte ", at, ": bad dimension ", s));
    }
  }
  // Bounded at each step: corrupt dimensions could overflow int64 to a small (even zero) product
  // and pass a check made afterwards.
  if (std::find(shape.begin(), shape.end(), 0) == shape.end()) {
    int64_t numel = 1;
    for (int64_t s : shape) {
      if (numel > kMaxElements / s) {
        throw FormatError(detail::concat(in.source(), ": at byte ", at, ": tensor of shape ",
                                         shape_str(shape), " is too large"));
      }
      numel *= s;
    }
  }
  const auto dtype = static_cast<DType>(code);
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  if (auto left = in.remaining(); left && *left < nbytes) {
    // Worded as BinaryReader words a short read: the stream ends at offset + left.
    throw FormatError(detail::concat(in.source(), ": truncated at byte ", in.offset() + *left,
                                     ": tensor of shape ", shape_str(shape), " (header at byte ",
                                     at, ") needs ", nbytes, " bytes of data, ", *left, " left"));
  }
  Tensor t = Tensor::empty(shape, dtype);
  in.read_bytes(std::span(static_cast<std::byte*>(t.raw_data()), t.nbytes()));
  return t;
}

}  // namespace tessera
