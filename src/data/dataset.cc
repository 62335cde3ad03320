#include "tessera/data/dataset.h"

#include "tessera/core/error.h"
#include "tessera/tensor/dtype.h"

namespace tessera::data {

Example Dataset::get(int64_t index) {
  Example example;
  example.features = Tensor::empty(sample_shape(), DType::kFloat32);
  example.label = read_into(index, example.features.span<float>());
  return example;
}

Batch Dataset::get_batch(std::span<const int64_t> indices) {
  const auto batch = static_cast<int64_t>(indices.size());
  Shape shape{batch};
  shape.insert(shape.end(), sample_shape().begin(), sample_shape().end());
  Batch out;
  out.x = Tensor::empty(shape, DType::kFloat32);
  out.y = Tensor::empty({batch}, DType::kInt64);
  float* x = out.x.data<float>();
  int64_t* y = out.y.data<int64_t>();
  const int64_t numel = sample_numel();
  for (int64_t i = 0; i < batch; ++i) {
    y[i] = read_into(indices[static_cast<size_t>(i)],
                     std::span<float>(x + i * numel, static_cast<size_t>(numel)));
  }
  return out;
}

std::string SampleOrigin::describe(int64_t index) const {
  if (file.empty()) return detail::concat("sample ", index);
  if (index >= 0 && index < static_cast<int64_t>(lines.size())) {
    return detail::concat(file, ":", lines[static_cast<size_t>(index)]);
  }
  return detail::concat(file, ": record ", index + 1);
}

int64_t Dataset::label(int64_t index) {
  std::vector<float> scratch(static_cast<size_t>(sample_numel()));
  return read_into(index, scratch);
}

void Dataset::check_index(int64_t index, const char* what) const {
  if (index < 0 || index >= size()) {
    throw IndexError(detail::concat(what, ": index ", index, " is outside [0, ", size(), ")"));
  }
}

void Dataset::check_read(int64_t index, std::span<float> out, const char* what) const {
  check_index(index, what);
  if (static_cast<int64_t>(out.size()) != sample_numel()) {
    throw ShapeError(detail::concat(what, ": output holds ", out.size(),
                                    " floats, a sample of shape ", shape_str(sample_shape()),
                                    " needs ", sample_numel()));
  }
}

}  // namespace tessera::data
