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

}  // namespace
}  // namespace tessera::estimators
