#include "tessera/data/byte_image_dataset.h"

#include "tessera/core/error.h"

namespace tessera::data {

ByteImageDataset::ByteImageDataset(std::vector<uint8_t> pixels, Shape sample_shape, Tensor labels,
                                   const NormalizeOptions& normalize)
    : pixels_(std::move(pixels)),
      sample_shape_(std::move(sample_shape)),
      labels_(labels.to(DType::kInt64).contiguous()),
      sample_numel_(shape_numel(sample_shape_)),
      multiplier_(static_cast<float>(normalize.multiplier())),
      offset_(static_cast<float>(normalize.offset())) {
  if (labels_.dim() != 1) {
    throw ShapeError("ByteImageDataset: labels must be [N], got " + shape_str(labels_.shape()));
  }
  size_ = labels_.size(0);
  if (static_cast<int64_t>(pixels_.size()) != size_ * sample_numel_) {
    throw ShapeError(detail::concat("ByteImageDataset: ", pixels_.size(),
                                    " pixel bytes do not hold ", size_, " samples of ",
                                    shape_str(sample_shape_)));
  }
}

int64_t ByteImageDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "ByteImageDataset");
  const uint8_t* src = pixels_.data() + index * sample_numel_;
  // Locals: a store through `out` could change the members, as far as the compiler knows, which
  // keeps it from vectorising the loop.
  const float multiplier = multiplier_;
  const float offset = offset_;
  const int64_t n = sample_numel_;
  float* dst = out.data();
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) * multiplier + offset;
  return labels_.data<int64_t>()[index];
}

int64_t ByteImageDataset::label(int64_t index) {
  check_index(index, "ByteImageDataset::label");
  return labels_.data<int64_t>()[index];
}

}  // namespace tessera::data
