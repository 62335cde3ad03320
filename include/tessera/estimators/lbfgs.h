#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tessera::estimators {

// The objective: its value at `x`, with its gradient written to `grad` (sized like x).
using Objective = std::function<double(const std::vector<double>& x, std::vector<double>& grad)>;

struct LbfgsOptions {
  int64_t max_iterations = 500;
  int64_t history = 10;  // the (s, y) pairs kept
  // Converged when the largest gradient component is at most this ...
  double gradient_tolerance = 1e-6;
  // ... or an iteration lowers the objective by at most this, relative to its size.
  double value_tolerance = 1e-12;
  // Called after each iteration with its number and the objective's value.
  std::function<void(int64_t, double)> on_iteration{};
};

struct LbfgsResult {
  std::vector<double> x;
  double value = 0.0;
  int64_t iterations = 0;
  int64_t evaluations = 0;
  bool converged = false;
  std::string stop;  // why it stopped, in words
};

// Minimises a smooth objective from x0 by limited-memory BFGS with a line search for the strong
// Wolfe conditions. Deterministic:
// the same objective values give the same iterates, so processes that evaluate the same
// objective (each its share, summed by allreduce) take the same steps.
[[nodiscard]] LbfgsResult minimize_lbfgs(const Objective& f, std::vector<double> x0,
                                         const LbfgsOptions& options);

// Minimises f(x) + sum_i l1[i] |x_i| (f smooth, every l1[i] >= 0) by OWL-QN (Andrew and Gao,
// 2007): L-BFGS steps on the orthant the pseudo-gradient points into, a backtracking line search
// projected onto that orthant, so coordinates reach exactly 0. Converged when the pseudo-gradient
// (the gradient of the nearest smooth piece, 0 where 0 is optimal) is within gradient_tolerance.
// The value returned includes the L1 term. Deterministic as minimize_lbfgs.
[[nodiscard]] LbfgsResult minimize_owlqn(const Objective& f, std::vector<double> x0,
                                         const std::vector<double>& l1,
                                         const LbfgsOptions& options);

}  // namespace tessera::estimators
