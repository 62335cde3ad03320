#pragma once

#include <cstdint>
#include <span>

#include "tessera/data/dataset.h"
#include "tessera/tensor/tensor.h"

namespace tessera::data {

// A dataset held in memory as two tensors: features float32 [N, ...] and labels int64 [N].
// read_into copies one contiguous row (one memcpy).
// Aliasing: the tensors are shared with the caller (Tensor copies share storage), so writing to
// them changes the dataset. Threading: read-only after construction, so any number of threads
// may read it at once.
class InMemoryDataset : public Dataset {
 public:
  // features: [N, ...] of any floating dtype (converted to contiguous float32); labels: [N] int32
  // or int64 (converted to int64). Throws ShapeError when features has no leading sample axis or
  // the two disagree on N, DTypeError on other dtypes.
  InMemoryDataset(Tensor features, Tensor labels);
  InMemoryDataset(InMemoryDataset&&) = default;
  InMemoryDataset& operator=(InMemoryDataset&&) = default;

  [[nodiscard]] int64_t size() const override { return size_; }
  [[nodiscard]] const Shape& sample_shape() const override { return sample_shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override;
  [[nodiscard]] bool concurrent_reads() const override { return true; }
  [[nodiscard]] int64_t label(int64_t index) override;

  // float32 [N, ...sample_shape], contiguous.
  [[nodiscard]] const Tensor& features() const { return features_; }
  // int64 [N], contiguous.
  [[nodiscard]] const Tensor& labels() const { return labels_; }

 private:
  Tensor features_;
  Tensor labels_;
  Shape sample_shape_;
  int64_t size_ = 0;
  int64_t sample_numel_ = 0;
};

}  // namespace tessera::data
