#include "tessera/data/in_memory_dataset.h"

#include <cstring>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/tensor/dtype.h"

namespace tessera::data {

InMemoryDataset::InMemoryDataset(Tensor features, Tensor labels) {
  if (!features.defined() || !labels.defined()) {
    throw ValueError("InMemoryDataset: features and labels must be defined tensors");
  }
  if (features.dim() < 1) {
    throw ShapeError(detail::concat("InMemoryDataset: features ", shape_str(features.shape()),
                                    " need a leading sample axis [N, ...]"));
  }
  if (labels.dim() != 1 || labels.size(0) != features.size(0)) {
    throw ShapeError(detail::concat("InMemoryDataset: labels ", shape_str(labels.shape()),
                                    " must be [N] with N = ", features.size(0), " (features ",
                                    shape_str(features.shape()), ")"));
  }
  if (!is_floating(features.dtype())) {
    throw DTypeError(detail::concat("InMemoryDataset: features are ", dtype_name(features.dtype()),
                                    ", expected a floating dtype"));
  }
  if (labels.dtype() != DType::kInt64 && labels.dtype() != DType::kInt32) {
    throw DTypeError(detail::concat("InMemoryDataset: labels are ", dtype_name(labels.dtype()),
                                    ", expected int64 or int32"));
  }
  features_ = features.to(DType::kFloat32).contiguous();
  labels_ = labels.to(DType::kInt64).contiguous();
  size_ = features_.size(0);
  sample_shape_.assign(features_.shape().begin() + 1, features_.shape().end());
  sample_numel_ = shape_numel(sample_shape_);
}

int64_t InMemoryDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "InMemoryDataset::read_into");
  std::memcpy(out.data(), features_.data<float>() + index * sample_numel_,
              static_cast<size_t>(sample_numel_) * sizeof(float));
  return labels_.data<int64_t>()[index];
}

int64_t InMemoryDataset::label(int64_t index) {
  check_index(index, "InMemoryDataset::label");
  return labels_.data<int64_t>()[index];
}

}  // namespace tessera::data
