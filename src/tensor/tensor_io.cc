#include "tessera/tensor/tensor_io.h"

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
  if (shape_numel(shape) > kMaxElements) {
    throw FormatError(detail::concat(in.source(), ": at byte ", at, ": tensor of shape ",
                                     shape_str(shape), " is too large"));
  }
  Tensor t = Tensor::empty(shape, static_cast<DType>(code));
  in.read_bytes(std::span(static_cast<std::byte*>(t.raw_data()), t.nbytes()));
  return t;
}

}  // namespace tessera
