#include "tessera/tensor/shape.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera {

int64_t shape_numel(const Shape& shape, const char* op) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) {
      throw ShapeError(detail::concat(op, ": negative dimension in shape ", shape_str(shape)));
    }
    if (__builtin_mul_overflow(n, s, &n)) {
      throw ShapeError(detail::concat(op, ": shape ", shape_str(shape),
                                      " has more elements than fit in a 64-bit count"));
    }
  }
  return n;
}

size_t shape_bytes(const Shape& shape, size_t element_size, const char* op) {
  size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(shape_numel(shape, op)), element_size, &bytes)) {
    throw ShapeError(detail::concat(op, ": shape ", shape_str(shape), " of ", element_size,
                                    "-byte elements needs more bytes than fit in a 64-bit size"));
  }
  return bytes;
}

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    // A dimension of 0 makes the numel 0 whatever the others are, so the numel check does not
    // bound these products.
    if (__builtin_mul_overflow(stride, std::max<int64_t>(shape[i], 1), &stride)) {
      throw ShapeError("strides of shape " + shape_str(shape) + " do not fit in 64 bits");
    }
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(detail::concat(op, ": shapes ", shape_str(a), " and ", shape_str(b),
                                      " do not broadcast (dim ", i, ": ", da, " vs ", db, ")"));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_axis(int64_t axis, int64_t dim, const char* op) {
  int64_t a = axis < 0 ? axis + dim : axis;
  if (a < 0 || a >= dim) {
    throw IndexError(
        detail::concat(op, ": axis ", axis, " out of range for a tensor of ", dim, " dims"));
  }
  return a;
}

}  // namespace tessera
