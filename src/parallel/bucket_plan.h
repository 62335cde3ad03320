#pragma once

#include <cstddef>
#include <vector>

#include "tessera/autograd/variable.h"

namespace tessera::parallel {

// Groups parameters into gradient buckets in reverse registration order (roughly the order
// backward makes their gradients final): the first bucket holds about `first_bytes` of float32
// gradients, the others about `bytes`, and a parameter larger than that gets a bucket of its own.
// Each bucket lists its parameters' indices, in the order they were added.
[[nodiscard]] std::vector<std::vector<std::size_t>> plan_buckets(
    const std::vector<autograd::Variable>& params, std::size_t first_bytes, std::size_t bytes);

}  // namespace tessera::parallel
