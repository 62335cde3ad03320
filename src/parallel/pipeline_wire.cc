#include "pipeline_wire.h"

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"
#include "tessera/core/memory.h"

namespace tessera::parallel {

TensorHeader header_of(const Tensor& t) {
  if (t.dim() > static_cast<int64_t>(kMaxTensorRank)) {
    throw ValueError(detail::concat("pipeline: a stage's output has ", t.dim(),
                                    " dimensions; at most ", kMaxTensorRank,
                                    " pass between stages"));
  }
  TensorHeader h{};
  h[0] = static_cast<int64_t>(t.dtype());
  h[1] = t.dim();
  for (int64_t i = 0; i < t.dim(); ++i) h[2 + static_cast<size_t>(i)] = t.size(i);
  return h;
}

TensorSpec decode_header(const TensorHeader& h, int peer, const std::string& group) {
  auto bad = [&](const std::string& what) {
    return comm::CommError(
        detail::concat("pipeline ", group, ": stage ", peer, " sent a bad tensor header: ", what));
  };
  if (h[0] < 0 || h[0] > static_cast<int64_t>(DType::kFloat16)) {
    throw bad(detail::concat("dtype ", h[0]));
  }
  if (h[1] < 0 || h[1] > static_cast<int64_t>(kMaxTensorRank)) {
    throw bad(detail::concat("rank ", h[1]));
  }
  Shape shape(h.begin() + 2, h.begin() + 2 + h[1]);
  for (int64_t d : shape) {
    if (d < 0) throw bad("negative size in " + shape_str(shape));
  }
  const auto dtype = static_cast<DType>(h[0]);
  size_t bytes = 0;
  try {
    bytes = shape_bytes(shape, dtype_size(dtype), "pipeline tensor header");
  } catch (const Error& e) {  // a size whose bytes overflow
    throw bad(e.what());
  }
  if (bytes > physical_memory_bytes()) {
    throw bad(detail::concat(shape_str(shape), " is ", format_bytes(bytes),
                             ", more than this machine's memory"));
  }
  return {std::move(shape), dtype};
}

}  // namespace tessera::parallel
