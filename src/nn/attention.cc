#include "tessera/nn/attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "tessera/autograd/functions.h"
#include "tessera/core/error.h"

namespace tessera::nn {
namespace {

namespace ag = autograd;

// [T, T]: 0 where a query may look (key <= query), -inf elsewhere; added to the scores.
Tensor causal_mask(int64_t t, DType dtype) {
  std::vector<double> mask(static_cast<size_t>(t * t), 0.0);
  for (int64_t q = 0; q < t; ++q) {
    for (int64_t k = q + 1; k < t; ++k) {
      mask[static_cast<size_t>(q * t + k)] = -std::numeric_limits<double>::infinity();
    }
  }
  return Tensor::from_vector<double>(mask, {t, t}).to(dtype);
}

}  // namespace

Variable split_heads(const Variable& x, int64_t heads) {
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2) / heads;
  return ag::reshape(ag::transpose(ag::reshape(x, {b, t, heads, d}), 1, 2), {b * heads, t, d});
}

Variable merge_heads(const Variable& x, int64_t batch) {
  const int64_t heads = x.size(0) / batch, t = x.size(1), d = x.size(2);
  return ag::reshape(ag::transpose(ag::reshape(x, {batch, heads, t, d}), 1, 2),
                     {batch, t, heads * d});
}

Variable scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                      bool causal) {
  if (q.dim() != 3 || k.shape() != q.shape() || v.shape() != q.shape()) {
    throw ShapeError(detail::concat("attention: q ", shape_str(q.shape()), ", k ",
                                    shape_str(k.shape()), ", v ", shape_str(v.shape()),
                                    ": expected three [N, T, d]"));
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(2)));
  Variable scores = ag::mul_scalar(ag::matmul(q, ag::transpose(k, 1, 2)), scale);
  if (causal) scores = ag::add(scores, Variable(causal_mask(q.size(1), q.dtype())));
  return ag::matmul(ag::softmax(scores, 2), v);
}

SelfAttention::SelfAttention(int64_t dim, int64_t heads, bool causal, Generator& gen, DType dtype)
    : dim_(dim), heads_(heads), causal_(causal) {
  if (dim < 1 || heads < 1 || dim % heads != 0) {
    throw ValueError(detail::concat("SelfAttention: dim ", dim, " must be a positive multiple of ",
                                    "heads ", heads));
  }
  qkv_ = register_module(
      "qkv", std::make_shared<Linear>(dim, 3 * dim, gen, LinearOptions{.dtype = dtype}));
  proj_ = register_module("proj",
                          std::make_shared<Linear>(dim, dim, gen, LinearOptions{.dtype = dtype}));
}

Variable SelfAttention::forward(const Variable& input) {
  if (input.dim() != 3 || input.size(2) != dim_) {
    throw ShapeError(detail::concat("SelfAttention: input ", shape_str(input.shape()),
                                    ", expected [batch, tokens, ", dim_, "]"));
  }
  const Variable qkv = qkv_->forward(input);
  auto part = [&](int64_t i) {
    return split_heads(ag::slice(qkv, 2, i * dim_, (i + 1) * dim_), heads_);
  };
  const Variable heads = scaled_dot_product_attention(part(0), part(1), part(2), causal_);
  return proj_->forward(merge_heads(heads, input.size(0)));
}

std::string SelfAttention::name() const {
  return detail::concat("SelfAttention(", dim_, ", heads=", heads_, causal_ ? ", causal" : "", ")");
}

}  // namespace tessera::nn
