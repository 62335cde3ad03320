#include "tessera/tensor/reduce.h"

#include "tessera/tensor/elementwise.h"

#include <algorithm>

namespace tessera {
namespace {

std::vector<bool> reduced_mask(const Tensor& a, const std::vector<int64_t>& axes, const char* op) {
  std::vector<bool> mask(a.dim(), axes.empty());
  for (int64_t axis : axes) mask[normalize_axis(axis, a.dim(), op)] = true;
  return mask;
}

Shape reduced_shape(const Tensor& a, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (!mask[d]) {
      out.push_back(a.size(d));
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

// Puts the reduced axes last and returns a contiguous [outer, inner] view of it.
Tensor rows_to_reduce(const Tensor& a, const std::vector<bool>& mask, int64_t* outer,
                      int64_t* inner) {
  std::vector<int64_t> order;
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (!mask[d]) {
      order.push_back(d);
      *outer *= a.size(d);
    }
  }
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (mask[d]) {
      order.push_back(d);
      *inner *= a.size(d);
    }
  }
  return a.permute(order).contiguous();
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  auto mask = reduced_mask(a, axes, "sum");
  Shape out_shape = reduced_shape(a, mask, keepdim);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  // Reducing a leading block of a contiguous tensor (a bias gradient): add rows, no transpose.
  int64_t lead = 0;
  while (lead < a.dim() && mask[lead]) ++lead;
  bool leading_only = std::none_of(mask.begin() + lead, mask.end(), [](bool m) { return m; });
  TESSERA_DISPATCH_FLOATING(a.dtype(), "sum", [&] {
    scalar_t* o = out.data<scalar_t>();
    if (leading_only && a.is_contiguous() && lead > 0 && lead < a.dim()) {
      int64_t rows = 1;
      for (int64_t d = 0; d < lead; ++d) rows *= a.size(d);
      // Not numel / rows: with an empty leading axis that is 0 and the output stays unwritten.
      int64_t cols = 1;
      for (int64_t d = lead; d < a.dim(); ++d) cols *= a.size(d);
      const scalar_t* x = a.data<scalar_t>();
      std::fill(o, o + cols, scalar_t(0));
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t* row = x + r * cols;
        for (int64_t c = 0; c < cols; ++c) o[c] += row[c];
      }
      return;
    }
    int64_t outer, inner;
    Tensor rows = rows_to_reduce(a, mask, &outer, &inner);
    const scalar_t* x = rows.data<scalar_t>();
    for (int64_t r = 0; r < outer; ++r) {
      double acc = 0.0;
      const scalar_t* row = x + r * inner;
      for (int64_t c = 0; c < inner; ++c) acc += row[c];
      o[r] = static_cast<scalar_t>(acc);
    }
  });
  return out;
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  Tensor s = sum(a, axes, keepdim);
  if (s.numel() > 0) scale_(s, static_cast<double>(s.numel()) / static_cast<double>(a.numel()));
  return s;
}

MaxResult max(const Tensor& a, int64_t axis, bool keepdim) {
  int64_t ax = normalize_axis(axis, a.dim(), "max");
  if (a.size(ax) == 0) {
    throw ShapeError(detail::concat("max: axis ", ax, " of ", shape_str(a.shape()), " is empty"));
  }
  std::vector<bool> mask(a.dim(), false);
  mask[ax] = true;
  Shape out_shape = reduced_shape(a, mask, keepdim);
  MaxResult result{Tensor::empty(out_shape, a.dtype()), Tensor::empty(out_shape, DType::kInt64)};
  int64_t outer, inner;
  Tensor rows = rows_to_reduce(a, mask, &outer, &inner);
  TESSERA_DISPATCH_FLOATING(a.dtype(), "max", [&] {
    const scalar_t* x = rows.data<scalar_t>();
    scalar_t* v = result.values.data<scalar_t>();
    int64_t* idx = result.indices.data<int64_t>();
    for (int64_t r = 0; r < outer; ++r) {
      const scalar_t* row = x + r * inner;
      int64_t best = 0;
      for (int64_t c = 1; c < inner; ++c) {
        if (row[c] > row[best]) best = c;
      }
      v[r] = row[best];
      idx[r] = best;
    }
  });
  return result;
}

Tensor argmax(const Tensor& a, int64_t axis, bool keepdim) { return max(a, axis, keepdim).indices; }

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (shape.size() > a.shape().size()) {
    throw ShapeError(
        detail::concat("sum_to: cannot reduce ", shape_str(a.shape()), " to ", shape_str(shape)));
  }
  size_t lead = a.shape().size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t d = 0; d < a.shape().size(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && a.shape()[d] != 1)) {
      axes.push_back(static_cast<int64_t>(d));
    } else if (shape[d - lead] != a.shape()[d]) {
      throw ShapeError(
          detail::concat("sum_to: cannot reduce ", shape_str(a.shape()), " to ", shape_str(shape)));
    }
  }
  if (axes.empty()) return a.reshape(shape);
  return sum(a, axes, true).reshape(shape);
}

}  // namespace tessera
