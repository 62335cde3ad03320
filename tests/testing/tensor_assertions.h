#pragma once

#include <gtest/gtest.h>

#include "tessera/tensor/tensor.h"

namespace tessera::testing {

// Passes when actual has expected's shape and every element satisfies
// |actual - expected| <= atol + rtol * |expected| (compared in double, any dtypes; NaN never
// passes). The failure message names the shapes or the first element that differs.
//   EXPECT_TRUE(tensors_close(out, reference, 1e-5, 1e-6));
::testing::AssertionResult tensors_close(const Tensor& actual, const Tensor& expected,
                                         double rtol = 1e-9, double atol = 1e-12);

// Passes when actual has expected's shape and dtype and the same elements bit for bit.
::testing::AssertionResult tensors_equal(const Tensor& actual, const Tensor& expected);

}  // namespace tessera::testing
