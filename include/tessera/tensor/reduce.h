#pragma once

#include <cstdint>
#include <vector>

#include "tessera/tensor/tensor.h"

namespace tessera {

// Sum over the given axes (all axes when empty). keepdim keeps reduced axes with size 1.
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);

struct MaxResult {
  Tensor values;
  Tensor indices;  // int64, index along the reduced axis
};
// Maximum along one axis, with the index of the first maximum.
MaxResult max(const Tensor& a, int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t axis, bool keepdim = false);

// Sums a broadcast result back down to `shape` (the gradient of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);

}  // namespace tessera
