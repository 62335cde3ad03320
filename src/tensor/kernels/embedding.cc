#include "tessera/tensor/embedding.h"

#include <cstring>

namespace tessera {
namespace {

template <typename I>
int64_t checked_row(const I* idx, int64_t pos, int64_t rows, const char* op) {
  int64_t r = static_cast<int64_t>(idx[pos]);
  if (r < 0 || r >= rows) {
    throw IndexError(detail::concat(op, ": index ", r, " at position ", pos, " out of range for ",
                                    rows, " rows"));
  }
  return r;
}

}  // namespace

Tensor embedding(const Tensor& weight_view, const Tensor& indices_view) {
  if (weight_view.dim() != 2) {
    throw ShapeError("embedding: weight must be [V, D], got " + shape_str(weight_view.shape()));
  }
  Tensor weight = weight_view.contiguous();
  Tensor indices = indices_view.contiguous();
  const int64_t rows = weight.size(0);
  const int64_t d = weight.size(1);
  Shape out_shape = indices.shape();
  out_shape.push_back(d);
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  const size_t row_bytes = static_cast<size_t>(d) * dtype_size(weight.dtype());
  TESSERA_DISPATCH_INDEX(indices.dtype(), "embedding", [&] {
    const index_t* idx = indices.data<index_t>();
    auto* src = static_cast<const char*>(weight.raw_data());
    auto* dst = static_cast<char*>(out.raw_data());
    for (int64_t i = 0; i < indices.numel(); ++i) {
      int64_t r = checked_row(idx, i, rows, "embedding");
      std::memcpy(dst + i * row_bytes, src + r * row_bytes, row_bytes);
    }
  });
  return out;
}

Tensor embedding_backward(const Tensor& grad_view, const Tensor& indices_view, int64_t num_rows) {
  Tensor grad = grad_view.contiguous();
  Tensor indices = indices_view.contiguous();
  const int64_t d = grad.dim() == 0 ? 0 : grad.size(-1);
  if (grad.numel() != indices.numel() * d) {
    throw ShapeError(detail::concat("embedding_backward: grad ", shape_str(grad.shape()),
                                    " does not match indices ", shape_str(indices.shape())));
  }
  Tensor out = Tensor::zeros({num_rows, d}, grad.dtype());
  TESSERA_DISPATCH_FLOATING(grad.dtype(), "embedding_backward", [&] {
    TESSERA_DISPATCH_INDEX(indices.dtype(), "embedding_backward", [&] {
      const index_t* idx = indices.data<index_t>();
      const scalar_t* g = grad.data<scalar_t>();
      scalar_t* o = out.data<scalar_t>();
      for (int64_t i = 0; i < indices.numel(); ++i) {
        int64_t r = checked_row(idx, i, num_rows, "embedding_backward");
        for (int64_t k = 0; k < d; ++k) o[r * d + k] += g[i * d + k];
      }
    });
  });
  return out;
}

}  // namespace tessera
