#include "tessera/nn/embedding.h"

#include "tessera/autograd/functions.h"
#include "tessera/nn/init.h"

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

}  // namespace tessera::nn
