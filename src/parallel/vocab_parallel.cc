#include "tessera/parallel/vocab_parallel.h"

#include <cmath>
#include <limits>

#include "tessera/autograd/functions.h"
#include "tessera/autograd/node.h"
#include "tessera/core/error.h"
#include "tessera/parallel/tensor_parallel.h"

namespace tessera::parallel {
namespace {

namespace ag = autograd;

void allreduce(std::vector<double>& values, comm::ProcessGroup& group, comm::ReduceOp op) {
  group.allreduce(values.data(), values.size(), comm::DataType::kFloat64, op)->wait();
}

// Rows of `table` ([n, D], ids first .. first + n - 1) for `ids`, zero for ids outside.
Variable rows_in_range(const Variable& table, const Tensor& ids, int64_t first) {
  const int64_t n = table.size(0), d = table.size(1);
  Shape shape = ids.shape();
  shape.push_back(d);
  Tensor out = Tensor::zeros(shape);
  const Tensor w = table.data().contiguous();
  const auto* id = ids.data<int64_t>();
  const float* src = w.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t row = id[i] - first;
    if (row >= 0 && row < n) std::copy(src + row * d, src + (row + 1) * d, dst + i * d);
  }
  return ag::make_result(out, "vocab_parallel_rows", {table},
                         [ids, first, n, d](const Tensor& grad, const std::vector<bool>&) {
                           Tensor g = Tensor::zeros({n, d});
                           const Tensor go = grad.contiguous();
                           const auto* id = ids.data<int64_t>();
                           const float* from = go.data<float>();
                           float* to = g.data<float>();
                           for (int64_t i = 0; i < ids.numel(); ++i) {
                             const int64_t row = id[i] - first;
                             if (row < 0 || row >= n) continue;
                             for (int64_t k = 0; k < d; ++k) to[row * d + k] += from[i * d + k];
                           }
                           return std::vector<Tensor>{g};
                         });
}

}  // namespace

VocabParallelEmbedding::VocabParallelEmbedding(const nn::TokenEmbedding& whole,
                                               comm::ProcessGroup& group)
    : group_(group) {
  const Tensor& table = whole.tokens().data();
  if (table.dtype() != DType::kFloat32 || table.size(0) % group.size() != 0) {
    throw ValueError(detail::concat("VocabParallelEmbedding: a float32 vocabulary of ",
                                    table.size(0), " rows does not divide among ", group.size(),
                                    " ranks"));
  }
  const int64_t mine = table.size(0) / group.size();
  first_ = group.rank() * mine;
  tokens_ = register_parameter("tokens", slice_for_rank(table, {0, 1}, group.rank(), group.size()));
  positions_ = register_parameter("positions", whole.positions().data().clone());
}

Variable VocabParallelEmbedding::forward(const Variable& tokens) {
  if (tokens.dim() != 2 || tokens.size(1) > positions_.size(0)) {
    throw ShapeError(detail::concat(name(), ": expected token ids [batch, up to ",
                                    positions_.size(0), "], got ", shape_str(tokens.shape())));
  }
  const Tensor ids = tokens.data().to(DType::kInt64).contiguous();
  const Variable rows = reduce_from_tensor_parallel(rows_in_range(tokens_, ids, first_), group_);
  std::vector<int64_t> steps(static_cast<size_t>(tokens.size(1)));
  for (size_t i = 0; i < steps.size(); ++i) steps[i] = static_cast<int64_t>(i);
  return ag::add(rows, ag::embedding(positions_, Tensor::from_vector(steps, {tokens.size(1)})));
}

std::string VocabParallelEmbedding::name() const {
  return detail::concat("VocabParallelEmbedding(", tokens_.size(0), " of ",
                        tokens_.size(0) * group_.size(), " tokens, ", tokens_.size(1), ")");
}

Variable vocab_parallel_cross_entropy(const Variable& logits, const Tensor& labels,
                                      comm::ProcessGroup& group) {
  if (logits.dim() != 2 || logits.data().dtype() != DType::kFloat32 ||
      labels.numel() != logits.size(0)) {
    throw ShapeError(detail::concat("vocab_parallel_cross_entropy: logits ",
                                    shape_str(logits.shape()), " (float32 [N, V/T]) and ",
                                    labels.numel(), " labels"));
  }
  const int64_t n = logits.size(0), v = logits.size(1), first = group.rank() * v;
  const Tensor z = logits.data().contiguous();
  const Tensor y = labels.to(DType::kInt64).contiguous();
  const float* zp = z.data<float>();
  const int64_t* yp = y.data<int64_t>();
  std::vector<double> most(static_cast<size_t>(n), -std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < v; ++k) most[i] = std::max(most[i], double(zp[i * v + k]));
  }
  allreduce(most, group, comm::ReduceOp::kMax);
  std::vector<double> sums(static_cast<size_t>(n), 0.0), picked(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < v; ++k) sums[i] += std::exp(double(zp[i * v + k]) - most[i]);
    const int64_t col = yp[i] - first;
    if (col >= 0 && col < v) picked[i] = zp[i * v + col];
  }
  allreduce(sums, group, comm::ReduceOp::kSum);
  allreduce(picked, group, comm::ReduceOp::kSum);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) loss += std::log(sums[i]) + most[i] - picked[i];
  loss /= static_cast<double>(n);
  return ag::make_result(
      Tensor::scalar(loss), "vocab_parallel_cross_entropy", {logits},
      [z, y, most, sums, n, v, first](const Tensor& grad, const std::vector<bool>&) {
        const double scale = grad.item() / static_cast<double>(n);
        Tensor g = Tensor::empty({n, v});
        const float* zp = z.data<float>();
        const int64_t* yp = y.data<int64_t>();
        float* gp = g.data<float>();
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t k = 0; k < v; ++k) {
            const double p = std::exp(double(zp[i * v + k]) - most[i]) / sums[i];
            gp[i * v + k] = static_cast<float>(scale * (p - (yp[i] - first == k ? 1.0 : 0.0)));
          }
        }
        return std::vector<Tensor>{g};
      });
}

}  // namespace tessera::parallel
