#include "tessera/nn/embedding.h"

#include "tessera/autograd/functions.h"
#include "tessera/nn/init.h"

#include <vector>

namespace tessera::nn {

Embedding::Embedding(int64_t rows, int64_t dim, Generator& gen, DType dtype)
    : rows_(rows), dim_(dim) {
  if (rows < 1 || dim < 1) {
    throw ValueError(detail::concat("Embedding: rows and dim must be >= 1, got ", rows, ", ", dim));
  }
  Tensor w = Tensor::empty({rows, dim}, dtype);
  init::normal_(w, 0.0, 1.0, gen);
  weight_ = register_parameter("weight", w);
}

Variable Embedding::forward(const Variable& indices) {
  return autograd::embedding(weight_, indices.data());
}

std::string Embedding::name() const { return detail::concat("Embedding(", rows_, ", ", dim_, ")"); }

TokenEmbedding::TokenEmbedding(int64_t vocab, int64_t dim, int64_t positions, Generator& gen,
                               DType dtype)
    : vocab_(vocab), dim_(dim), positions_(positions) {
  if (vocab < 1 || dim < 1 || positions < 1) {
    throw ValueError(detail::concat("TokenEmbedding: vocab, dim and positions must be >= 1, got ",
                                    vocab, ", ", dim, ", ", positions));
  }
  Tensor tokens = Tensor::empty({vocab, dim}, dtype);
  init::normal_(tokens, 0.0, 0.02, gen);
  tokens_ = register_parameter("tokens", tokens);
  Tensor table = Tensor::empty({positions, dim}, dtype);
  init::normal_(table, 0.0, 0.02, gen);
  positions_table_ = register_parameter("positions", table);
}

Variable TokenEmbedding::forward(const Variable& tokens) {
  if (tokens.dim() != 2 || tokens.size(1) > positions_) {
    throw ShapeError(detail::concat(name(), ": expected token ids [batch, up to ", positions_,
                                    "], got ", shape_str(tokens.shape())));
  }
  const int64_t t = tokens.size(1);
  std::vector<int64_t> steps(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) steps[static_cast<size_t>(i)] = i;
  const Variable at = autograd::embedding(positions_table_, Tensor::from_vector(steps, {t}));
  return autograd::add(autograd::embedding(tokens_, tokens.data().to(DType::kInt64)), at);
}

std::string TokenEmbedding::name() const {
  return detail::concat("TokenEmbedding(", vocab_, ", ", dim_, ", positions=", positions_, ")");
}

}  // namespace tessera::nn
