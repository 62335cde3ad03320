#include "tessera/estimators/lbfgs.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace tessera::estimators {
namespace {

TEST(Lbfgs, FindsTheMinimumOfAnIllConditionedQuadratic) {
  // sum_i c_i (x_i - i)^2 with curvatures from 1 to 1e3
  const int n = 20;
  auto f = [&](const std::vector<double>& x, std::vector<double>& g) {
    double v = 0;
    for (int i = 0; i < n; ++i) {
      const double c = std::pow(10.0, 3.0 * i / (n - 1));
      v += c * (x[i] - i) * (x[i] - i);
      g[i] = 2 * c * (x[i] - i);
    }
    return v;
  };
  LbfgsResult r = minimize_lbfgs(f, std::vector<double>(n, 0.0),
                                 {.gradient_tolerance = 1e-6, .value_tolerance = 0.0});
  ASSERT_TRUE(r.converged) << r.stop;
  EXPECT_EQ(r.stop, "the gradient is within the tolerance");
  // Each gradient component is 2 c_i (x_i - i), c_i >= 1.
  for (int i = 0; i < n; ++i) EXPECT_NEAR(r.x[i], i, 5e-7) << i;
}

double rosenbrock(const std::vector<double>& x, std::vector<double>& g) {
  const double a = 1 - x[0];
  const double b = x[1] - x[0] * x[0];
  g[0] = -2 * a - 400 * x[0] * b;
  g[1] = 200 * b;
  return a * a + 100 * b * b;
}

TEST(Lbfgs, FindsTheMinimumOfRosenbrocksFunction) {
  LbfgsResult r = minimize_lbfgs(rosenbrock, {-1.2, 1.0}, {.gradient_tolerance = 1e-9});
  ASSERT_TRUE(r.converged) << r.stop;
  EXPECT_NEAR(r.x[0], 1.0, 1e-6);
  EXPECT_NEAR(r.x[1], 1.0, 1e-6);
  EXPECT_LT(r.iterations, 100);
}

TEST(Lbfgs, StopsAtTheIterationLimitAndSaysSo) {
  LbfgsResult r = minimize_lbfgs(rosenbrock, {-1.2, 1.0}, {.max_iterations = 3});
  EXPECT_FALSE(r.converged);
  EXPECT_EQ(r.iterations, 3);
  EXPECT_EQ(r.stop, "the iteration limit was reached");
}

// Separable: 1/2 sum a_i (x_i - c_i)^2 + l1 |x_i|, whose minimum soft-thresholds each c_i by
// l1 / a_i (0 when |c_i| <= l1 / a_i); the last coordinate is not penalised.
TEST(Owlqn, SoftThresholdsASeparableQuadratic) {
  const std::vector<double> a{1.0, 4.0, 0.5, 2.0, 1.0};
  const std::vector<double> c{3.0, -0.2, -5.0, 0.4, -2.0};
  const std::vector<double> l1{1.0, 1.0, 1.0, 1.0, 0.0};
  const Objective f = [&](const std::vector<double>& x, std::vector<double>& g) {
    double v = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      v += 0.5 * a[i] * (x[i] - c[i]) * (x[i] - c[i]);
      g[i] = a[i] * (x[i] - c[i]);
    }
    return v;
  };
  LbfgsOptions o;
  o.gradient_tolerance = 1e-10;
  const LbfgsResult r = minimize_owlqn(f, std::vector<double>(5, 0.0), l1, o);
  ASSERT_TRUE(r.converged) << r.stop;
  const std::vector<double> expected{2.0, 0.0, -3.0, 0.0, -2.0};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(r.x[i], expected[i], 1e-8) << i;
  EXPECT_EQ(r.x[1], 0.0) << "a coordinate L1 keeps at zero is exactly zero";
  EXPECT_EQ(r.x[3], 0.0);
  // The value counts the L1 term: 1/2 (1 + 1/4 ... ) at the minimum.
  double value = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    value +=
        0.5 * a[i] * (expected[i] - c[i]) * (expected[i] - c[i]) + l1[i] * std::abs(expected[i]);
  }
  EXPECT_NEAR(r.value, value, 1e-10);
}

}  // namespace
}  // namespace tessera::estimators
