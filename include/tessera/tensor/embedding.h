#pragma once

#include "tessera/tensor/tensor.h"

namespace tessera {

// Gathers rows of weight [V, D] at integer indices (any shape): output [..., D]. An index outside
// [0, V) throws IndexError naming its position and V.
Tensor embedding(const Tensor& weight, const Tensor& indices);
// The gradient: scatter-adds grad [..., D] into a zero [num_rows, D] at the indices.
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_rows);

}  // namespace tessera
