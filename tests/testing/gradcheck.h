#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/autograd/variable.h"
#include "tessera/tensor/tensor.h"

// Gradient checks (CONTRIBUTING.md, convention 14): each op registers its cases once, and one
// driver runs every registered case twice, in float64 and in float32, comparing the gradients
// backward() computes with central finite differences of the forward.
//
// The check. A case's function maps input Variables to an output y of any shape. The driver draws
// a fixed random weight w (same shape as y, |w| in [0.5, 1.5], random sign) and checks the
// gradient of L = sum(w * y): analytic from y.backward(w), numeric for each input element x_k as
//
//   n_k = sum_j w_j * (y_j(x + h e_k) - y_j(x - h e_k)) / ((x_k + h) - (x_k - h))
//
// where the difference of outputs is taken element by element in double before weighting (so the
// rounding of the outputs that do not depend on x_k cancels exactly), and the denominator is the
// step actually stored in the input's dtype. An element passes when
//
//   error = |a_k - n_k| / max(|a_k|, |n_k|, floor) < tolerance,
//
// i.e. a relative error for gradients of size floor or more, and an absolute error below
// tolerance * floor for smaller ones (where a relative error would measure only the
// finite-difference noise). A case passes when every element of every input that requires grad
// passes. Defaults:
//
//   float64: h = 1e-6, floor = 1e-3, tolerance = 1e-6. Central differences are exact to
//     h^2/6 * |f'''| ~ 1e-13 here, and rounding adds ~ulp(|y|) / h ~ 1e-10 for outputs of order 1,
//     i.e. 1e-10 / floor = 1e-7 in the worst (smallest-gradient) case. Measured over the autograd
//     suite: the largest error of any correct gradient is 5e-8. A gradient off by 2e-6 relative
//     (or by 1e-9 absolute where it is below the floor) fails.
//   float32: h = 1e-2, floor = 1e-1, tolerance = 1e-2. Finite differences in float32 cannot be
//     tight: the outputs carry rounding of ~6e-8 * |y| per operation, which becomes ~1e-5 * |y| of
//     noise in n_k after dividing by 2h, and the truncation error h^2/6 * |f'''| is ~1e-4 for
//     f = x^3 (1e-3 after dividing by the floor). Measured: the largest error of a correct
//     gradient is 1.4e-3, a margin of 7 below the bound. So this run catches errors of order 10%
//     and more, not 1% (the float64 run does, on the same templates): its job is what only
//     float32 executes (sgemm instead of dgemm, oneDNN convolutions, float dispatch, precision
//     lost to cancellation), whose bugs give errors of order 1.
//
// GradcheckResult::max_error is recorded as the test property "max_error" (--gtest_output=xml).
//
// Inputs are drawn from a generator with a fixed seed, so a failure reproduces exactly. Ops with
// kinks (relu, max-pool) need inputs at least h away from them: see Values.
namespace tessera::testing {

using autograd::Variable;

// The function under check. It receives one Variable per input (requires_grad as specified) and
// must build everything else it needs (labels, constants) in the inputs' dtype.
using GradcheckFn = std::function<Variable(const std::vector<Variable>&)>;

// How an input is laid out in memory. The values are the same in every layout; only the strides
// differ, so a kernel or backward that mishandles strides fails.
enum class Layout {
  kContiguous,
  // A transpose view (last two axes) of a contiguous tensor of the swapped shape. Needs dim >= 2
  // and the last two sizes not both 1.
  kTransposed,
  // Every other element along the last axis of a tensor twice as wide (slice with step 2). Needs
  // dim >= 1 and the last size > 1.
  kStrided,
};

// How an input's values are drawn.
enum class Values {
  kNormal,        // standard normal
  kPositive,      // uniform in [0.5, 2]: for log, sqrt, denominators, non-integer powers
  kAwayFromZero,  // |x| uniform in [0.2, 1.2], random sign: keeps relu-like kinks out of reach
  kDistinct,      // a random permutation of 0.05 * (i - numel/2): every maximum is unique by 0.05
  kProbability,   // uniform in [0.05, 0.95]: targets of binary cross-entropy
};

struct InputSpec {
  Shape shape{};
  bool requires_grad = true;
  Layout layout = Layout::kContiguous;
  Values values = Values::kNormal;
  // When defined, these values (converted to the check's dtype) instead of drawn ones.
  Tensor fixed{};
};

struct GradcheckOptions {
  DType dtype = DType::kFloat64;
  double eps = 1e-6;        // finite-difference step h
  double floor = 1e-3;      // smallest denominator of the error (see above)
  double tolerance = 1e-6;  // an element passes when its error is below this
  uint64_t seed = 20240611;
};

// The defaults above for float64 and float32.
GradcheckOptions float64_options();
GradcheckOptions float32_options();

struct GradcheckResult {
  bool passed = false;
  double max_error = 0.0;
  // The worst element (input, index, analytic, numeric), or what kept the check from running.
  std::string report;
};

// Checks f at inputs drawn as specified, in options.dtype.
[[nodiscard]] GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<InputSpec>& inputs,
                                        const GradcheckOptions& options = {});
// Checks f at the given values (converted to options.dtype), every input contiguous and requiring
// grad.
[[nodiscard]] GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                                        const GradcheckOptions& options = {});

// One registered check.
struct GradcheckCase {
  std::string name;  // unique in the binary; letters, digits and '_' (it becomes a test name)
  std::vector<InputSpec> inputs;
  GradcheckFn fn;
};

// Adds a case to this test binary's registry (throws std::invalid_argument on a bad or repeated
// name). Returns true, so that a namespace-scope constant can register at static initialisation:
//   const bool kRegistered = tessera::testing::register_gradcheck({...});
bool register_gradcheck(GradcheckCase c);
const std::vector<GradcheckCase>& registered_gradchecks();
// Names of the registered cases, in registration order (the driver's test parameters).
std::vector<std::string> registered_gradcheck_names();
const GradcheckCase& find_gradcheck(const std::string& name);

}  // namespace tessera::testing

// Defines the tests that run every registered case: <Prefix>/RegisteredGradcheck.Float64/<name>
// and .Float32/<name>. Use once in each test binary that registers cases, at namespace scope,
// with a prefix naming the binary so that test names stay unique across binaries (ctest lists them
// all): TESSERA_GRADCHECK_DRIVER(Autograd). Without an argument the prefix is All.
#define TESSERA_GRADCHECK_DRIVER(...) \
  TESSERA_GRADCHECK_DRIVER_NAMED(TESSERA_GRADCHECK_FIRST(__VA_ARGS__ __VA_OPT__(, ) All))
#define TESSERA_GRADCHECK_FIRST(...) TESSERA_GRADCHECK_FIRST_(__VA_ARGS__)
#define TESSERA_GRADCHECK_FIRST_(first, ...) first
#define TESSERA_GRADCHECK_DRIVER_NAMED(prefix)                                                     \
  class RegisteredGradcheck : public ::testing::TestWithParam<std::string> {};                     \
  TEST_P(RegisteredGradcheck, Float64) {                                                           \
    const auto& c = ::tessera::testing::find_gradcheck(GetParam());                                \
    auto r = ::tessera::testing::gradcheck(c.fn, c.inputs, ::tessera::testing::float64_options()); \
    RecordProperty("max_error", ::testing::PrintToString(r.max_error));                            \
    EXPECT_TRUE(r.passed) << c.name << " (float64): " << r.report;                                 \
  }                                                                                                \
  TEST_P(RegisteredGradcheck, Float32) {                                                           \
    const auto& c = ::tessera::testing::find_gradcheck(GetParam());                                \
    auto r = ::tessera::testing::gradcheck(c.fn, c.inputs, ::tessera::testing::float32_options()); \
    RecordProperty("max_error", ::testing::PrintToString(r.max_error));                            \
    EXPECT_TRUE(r.passed) << c.name << " (float32): " << r.report;                                 \
  }                                                                                                \
  GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RegisteredGradcheck);                              \
  INSTANTIATE_TEST_SUITE_P(                                                                        \
      prefix, RegisteredGradcheck,                                                                 \
      ::testing::ValuesIn(::tessera::testing::registered_gradcheck_names()),                       \
      [](const ::testing::TestParamInfo<std::string>& info) { return info.param; })
