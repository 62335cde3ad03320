#pragma once

#include <cstddef>

#include "tessera/comm/data_type.h"

// Element-wise reductions shared by the backends (Gloo's custom reduce function, a shared-memory
// reducer, an MPI user op for 16-bit floats).
namespace tessera::comm {

// c[i] = a[i] (op) b[i] for i < n. `c` may be the same buffer as `a` or `b`.
using ReduceFunction = void (*)(void* c, const void* a, const void* b, std::size_t n);

// The function for `op` on `dtype`; kAvg gives the sum (divide afterwards with divide_in_place).
// Integer sums wrap around on overflow; 16-bit floats compute in float and round to nearest even.
[[nodiscard]] ReduceFunction reduce_function(DataType dtype, ReduceOp op);

// data[i] /= divisor, in the element type (integers truncate toward zero; 16-bit floats divide in
// float and round).
void divide_in_place(void* data, std::size_t n, DataType dtype, int divisor);

}  // namespace tessera::comm
