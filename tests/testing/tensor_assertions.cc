#include "testing/tensor_assertions.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace tessera::testing {
namespace {

std::string index_of(const Shape& shape, int64_t k) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = k % shape[d];
    k /= shape[d];
  }
  return shape_str(index);
}

}  // namespace

::testing::AssertionResult tensors_close(const Tensor& actual, const Tensor& expected, double rtol,
                                         double atol) {
  if (!actual.defined() || !expected.defined()) {
    return ::testing::AssertionFailure()
           << "actual is " << (actual.defined() ? "defined" : "undefined") << ", expected is "
           << (expected.defined() ? "defined" : "undefined");
  }
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " != expected "
                                         << shape_str(expected.shape());
  }
  std::vector<double> a = actual.to(DType::kFloat64).to_vector<double>();
  std::vector<double> e = expected.to(DType::kFloat64).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i]))) {
      return ::testing::AssertionFailure()
             << "element " << index_of(actual.shape(), static_cast<int64_t>(i)) << " of "
             << shape_str(actual.shape()) << ": " << a[i] << " != expected " << e[i]
             << " (difference " << std::abs(a[i] - e[i]) << ", rtol " << rtol << ", atol " << atol
             << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult tensors_equal(const Tensor& actual, const Tensor& expected) {
  if (!actual.defined() || !expected.defined() || actual.shape() != expected.shape() ||
      actual.dtype() != expected.dtype()) {
    return ::testing::AssertionFailure() << actual.to_string() << " != " << expected.to_string();
  }
  Tensor a = actual.contiguous();
  Tensor e = expected.contiguous();
  const auto* pa = static_cast<const unsigned char*>(a.raw_data());
  const auto* pe = static_cast<const unsigned char*>(e.raw_data());
  const size_t size = dtype_size(a.dtype());
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(pa + i * size, pe + i * size, size) != 0) {
      return ::testing::AssertionFailure()
             << "element " << index_of(a.shape(), i) << " of " << shape_str(a.shape())
             << " differs: " << a.to_string() << " vs " << e.to_string();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tessera::testing
