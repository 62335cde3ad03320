#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/core/random.h"
#include "tessera/tensor/device.h"
#include "tessera/tensor/dtype.h"
#include "tessera/tensor/shape.h"
#include "tessera/tensor/storage.h"

namespace tessera {

// An n-dimensional array: a view (shape, strides, offset) over shared Storage.
// Copying a Tensor shares its storage; clone() copies the data. Views (reshape of a contiguous
// tensor, slice, transpose, expand) share storage too, so writing through one changes the other.
// A default-constructed Tensor is undefined (defined() is false).
// Not thread-safe for concurrent writes; concurrent reads are fine.
class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::kFloat32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::kFloat32);
  static Tensor ones(const Shape& shape, DType dtype = DType::kFloat32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kFloat32);
  static Tensor scalar(double value, DType dtype = DType::kFloat32) {
    return full({}, value, dtype);
  }
  // 0, 1, ..., n-1.
  static Tensor arange(int64_t n, DType dtype = DType::kFloat32);
  // Standard normal / uniform [low, high) values drawn from gen.
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::kFloat32);
  static Tensor rand(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0,
                     DType dtype = DType::kFloat32);
  // A contiguous tensor over `storage` (at least numel * dtype size bytes).
  static Tensor over(std::shared_ptr<Storage> storage, const Shape& shape,
                     DType dtype = DType::kFloat32);
  // Copies values into a new tensor of the given shape (numel must match).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  // Size of one dimension; negative counts from the end.
  int64_t size(int64_t axis) const;
  int64_t numel() const { return numel_; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Pointer to element 0 of this view. Throws DTypeError if T is not the tensor's dtype.
  template <typename T>
  T* data() const;
  void* raw_data() const;
  // Elements of a contiguous tensor as a span.
  template <typename T>
  std::span<T> span() const;

  bool is_contiguous() const;
  // This tensor if already contiguous, else a contiguous copy.
  Tensor contiguous() const;
  Tensor clone() const;
  // A view when the tensor is contiguous, else a copy; one dimension may be -1.
  Tensor reshape(const Shape& shape) const;
  // Elements [start, end) with step along axis, as a view. Negative start/end count from the end.
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  // Drops axis by fixing it at index, as a view.
  Tensor select(int64_t axis, int64_t index) const;
  Tensor transpose(int64_t axis0, int64_t axis1) const;
  // Matrix transpose of a 2-D tensor, as a view.
  Tensor t() const;
  Tensor permute(const std::vector<int64_t>& order) const;
  // Broadcasts size-1 dimensions to shape (stride 0), as a view.
  Tensor expand(const Shape& shape) const;
  // Converts element type (a copy; this tensor if already of that dtype).
  Tensor to(DType dtype) const;

  // Writes src (broadcast to this shape, converted to this dtype) into this tensor's elements.
  void copy_from(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // The value of a one-element tensor.
  double item() const;
  // Element at a multi-index, as double (for tests and printing).
  double at(const std::vector<int64_t>& index) const;
  template <typename T>
  std::vector<T> to_vector() const;
  std::string to_string() const;

 private:
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);
  Tensor view_with(Shape shape, Shape strides, int64_t offset) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  int64_t numel_ = 0;
  DType dtype_ = DType::kFloat32;
  Device device_{};
};

template <typename T>
T* Tensor::data() const {
  if (dtype_of<T>() != dtype_) {
    throw DTypeError(detail::concat("Tensor::data: tensor is ", dtype_name(dtype_), ", requested ",
                                    dtype_name(dtype_of<T>())));
  }
  return static_cast<T*>(raw_data());
}

template <typename T>
std::span<T> Tensor::span() const {
  if (!is_contiguous()) throw ValueError("Tensor::span: tensor is not contiguous");
  return std::span<T>(data<T>(), static_cast<size_t>(numel_));
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape)) {
    throw ShapeError(detail::concat("Tensor::from_vector: ", values.size(),
                                    " values do not fill shape ", shape_str(shape)));
  }
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

}  // namespace tessera
