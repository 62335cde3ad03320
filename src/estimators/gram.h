#pragma once

#include <cstdint>

#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// Adds x^T x's upper triangle (with the diagonal) to out (d x d, row-major), x float32 [rows, d]:
// the products of column tiles i <= j only, 10 of the 16 a whole product would take.
void add_upper_outer(const Tensor& x, double* out);

// Copies the upper triangle of a (d x d, row-major) below the diagonal.
void mirror_upper(double* a, int64_t d);

}  // namespace tessera::estimators
