#pragma once

#include "tessera/tensor/tensor.h"

namespace tessera {

// Matrix product. 2-D x 2-D, or batched 3-D x 3-D / 3-D x 2-D. A transposed view (a.t()) is passed
// to BLAS as a transposed operand, never copied; other non-contiguous layouts are copied first.
// Throws ShapeError naming both shapes when inner dimensions differ.
Tensor matmul(const Tensor& a, const Tensor& b);

// out = alpha * a @ b + beta * out for 2-D operands (out contiguous, its shape [a.rows, b.cols]).
// With beta = 1 it accumulates, which is how gradients add into an existing buffer.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, double alpha = 1.0,
                 double beta = 0.0);

}  // namespace tessera
