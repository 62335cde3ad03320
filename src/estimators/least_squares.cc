// Least squares from its normal equations, one pass over the rows: fit_linear's "squared"
// objective, mean (x w + b - y)^2 / 2 + l1 |w|_1 + l2 / 2 |w|^2, on standardised features when
// standardising. Without l1 the equations are solved; with it, coordinate descent on them (the
// covariance updates of glmnet and scikit-learn's precomputed Gram).
#include <algorithm>
#include <cmath>
#include <optional>

#include "collective.h"
#include "gram.h"
#include "tessera/core/error.h"
#include "tessera/estimators/linear_model.h"

extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda,
                       double* b, const int* ldb, int* info);

namespace tessera::estimators {
namespace {

// Every process's [rows, sum y, sum y^2, the features' sums (d), x^T y (d), x^T x (d x d)].
std::vector<double> moments(RowSource& rows, comm::ProcessGroup* group) {
  const int64_t d = rows.num_features();
  std::vector<double> s = sum_blocks(
      rows, static_cast<size_t>(3 + 2 * d + d * d), [&](const RowBlock& b, std::vector<double>& s) {
        const float* x = b.x.data<float>();
        for (int64_t r = 0; r < b.rows(); ++r) {
          const double y = b.y[static_cast<size_t>(r)];
          if (!std::isfinite(y)) {
            throw FormatError(
                detail::concat(rows.origin(b.first + r), ": the target ", y, " is not a number"));
          }
          s[0] += 1;
          s[1] += y;
          s[2] += y * y;
          for (int64_t f = 0; f < d; ++f) {
            s[static_cast<size_t>(3 + f)] += x[r * d + f];
            s[static_cast<size_t>(3 + d + f)] += x[r * d + f] * y;
          }
        }
        add_upper_outer(b.x, s.data() + 3 + 2 * d);
      });
  sum_over(group, s);
  mirror_upper(s.data() + 3 + 2 * d, d);
  return s;
}

// The part of |w_j| a soft threshold keeps.
double shrink(double v, double by) { return std::copysign(std::max(std::abs(v) - by, 0.0), v); }

// The largest component of the objective's least subgradient at w: 0 at the minimum.
double largest_violation(const std::vector<double>& gram, const std::vector<double>& rhs,
                         const std::vector<double>& w, double l1, double l2) {
  const size_t d = w.size();
  double largest = 0.0;
  for (size_t j = 0; j < d; ++j) {
    double g = -rhs[j] + l2 * w[j];
    for (size_t k = 0; k < d; ++k) g += gram[j * d + k] * w[k];
    const double v =
        w[j] != 0 ? std::abs(g + std::copysign(l1, w[j])) : std::max(0.0, std::abs(g) - l1);
    largest = std::max(largest, v);
  }
  return largest;
}

// Minimises base + w^T gram w / 2 - rhs^T w + l1 |w|_1 + l2 / 2 |w|^2 one weight at a time, each
// to its exact minimum given the others, until no component of the least subgradient exceeds the
// gradient tolerance. Sweeps of d^2: the rows were read once, into gram.
LbfgsResult coordinate_descent(const std::vector<double>& gram, const std::vector<double>& rhs,
                               double base, double l1, double l2, const LbfgsOptions& options) {
  const size_t d = rhs.size();
  LbfgsResult out;
  std::vector<double>& w = out.x;
  w.assign(d, 0.0);
  std::vector<double> gw(d, 0.0);  // gram w, kept as w changes
  for (out.iterations = 1; out.iterations <= options.max_iterations; ++out.iterations) {
    for (size_t j = 0; j < d; ++j) {
      const double diagonal = gram[j * d + j] + l2;
      if (diagonal <= 0) continue;  // a constant feature: its weight stays 0
      const double others = rhs[j] - (gw[j] - gram[j * d + j] * w[j]);
      const double next = shrink(others, l1) / diagonal;
      const double change = next - w[j];
      if (change == 0) continue;
      w[j] = next;
      for (size_t k = 0; k < d; ++k) gw[k] += gram[k * d + j] * change;
    }
    double value = base;
    for (size_t j = 0; j < d; ++j) {
      value += 0.5 * w[j] * gw[j] - rhs[j] * w[j] + l1 * std::abs(w[j]) + 0.5 * l2 * w[j] * w[j];
    }
    if (options.on_iteration) options.on_iteration(out.iterations, value);
    if (largest_violation(gram, rhs, w, l1, l2) <= options.gradient_tolerance) {
      out.converged = true;
      out.stop = "coordinate descent on the normal equations converged";
      return out;
    }
  }
  --out.iterations;
  out.stop = "coordinate descent reached its sweep limit (solver max_iterations)";
  return out;
}

}  // namespace

std::optional<LinearFit> solve_least_squares(RowSource& rows, comm::ProcessGroup* group,
                                             const LinearOptions& options) {
  check_every_process_has_rows(rows, group, "linear model");
  const int64_t d = rows.num_features();
  const std::vector<double> s = moments(rows, group);
  const double n = s[0];
  if (n == 0) throw ValueError("linear model: no rows on any process");
  const double mean_y = s[1] / n;
  const double* sum_x = s.data() + 3;
  const double* xy = s.data() + 3 + d;
  const double* xx = s.data() + 3 + 2 * d;
  // The design z: the features, centred when there is an intercept or when standardising (which
  // centres), and divided by their deviations when standardising.
  const bool centre = options.fit_intercept || options.standardize;
  std::vector<double> mean(static_cast<size_t>(d));
  std::vector<double> scale(static_cast<size_t>(d), 1.0);
  for (int64_t f = 0; f < d; ++f) {
    mean[static_cast<size_t>(f)] = sum_x[f] / n;
    const double var = std::max(
        0.0, xx[f * d + f] / n - mean[static_cast<size_t>(f)] * mean[static_cast<size_t>(f)]);
    if (options.standardize && var > 0) scale[static_cast<size_t>(f)] = std::sqrt(var);
  }
  // gram = E[z z^T], rhs = E[z y] (centred y too when there is an intercept).
  std::vector<double> gram(static_cast<size_t>(d * d));
  std::vector<double> rhs(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) {
    const double mi = centre ? mean[static_cast<size_t>(i)] : 0.0;
    const double si = scale[static_cast<size_t>(i)];
    rhs[static_cast<size_t>(i)] = (xy[i] / n - mi * mean_y) / si;
    for (int64_t j = 0; j < d; ++j) {
      const double mj = centre ? mean[static_cast<size_t>(j)] : 0.0;
      gram[static_cast<size_t>(i * d + j)] =
          (xx[i * d + j] / n - mi * mj) / (si * scale[static_cast<size_t>(j)]);
    }
  }
  LinearFit fit;
  fit.rows = static_cast<int64_t>(n);
  if (options.l1 > 0) {
    // E[y^2] / 2 about the intercept's y: the objective at w = 0.
    const double base = 0.5 * (s[2] / n - (options.fit_intercept ? mean_y * mean_y : 0.0));
    fit.solver = coordinate_descent(gram, rhs, base, options.l1, options.l2, options.solver);
  } else {
    // Solve (gram + l2 I) w = rhs.
    std::vector<double>& a = gram;
    for (int64_t i = 0; i < d; ++i) a[static_cast<size_t>(i * d + i)] += options.l2;
    std::vector<double> w = rhs;
    const int order = static_cast<int>(d);
    const int one = 1;
    int info = 0;
    dposv_("U", &order, &one, a.data(), &order, w.data(), &order, &info);
    if (info != 0) return std::nullopt;  // not positive definite: collinear features, no l2
    fit.solver.x = w;
    fit.solver.converged = true;
    fit.solver.stop = "the normal equations solved";
  }
  const std::vector<double> w = fit.solver.x;
  double penalty = 0.0;
  for (double v : w) penalty += 0.5 * options.l2 * v * v + options.l1 * std::abs(v);
  // Back to the features as they are: z w = x (w / scale) - (mean / scale) . w when centred.
  LinearModel& m = fit.model;
  m.loss = "squared";
  m.features = d;
  m.outputs = 1;
  double intercept = options.fit_intercept ? mean_y : 0.0;
  for (int64_t f = 0; f < d; ++f) {
    const double raw = w[static_cast<size_t>(f)] / scale[static_cast<size_t>(f)];
    m.weights.push_back(static_cast<float>(raw));
    if (centre) intercept -= mean[static_cast<size_t>(f)] * raw;
  }
  // The intercept where the objective was minimised: of the standardised (centred) features, or
  // of the features as they are.
  if (options.fit_intercept) fit.solver.x.push_back(options.standardize ? mean_y : intercept);
  m.intercept = {static_cast<float>(intercept)};
  // The objective from the residuals themselves, one more pass: from the moments it would lose
  // digits to cancellation.
  std::vector<double> squares = sum_blocks(rows, 1, [&](const RowBlock& b, std::vector<double>& s) {
    const Tensor margins = m.margins(b.x);
    const float* p = margins.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double e = p[r] - b.y[static_cast<size_t>(r)];
      s[0] += e * e;
    }
  });
  sum_over(group, squares);
  fit.objective = 0.5 * squares[0] / n + penalty;
  fit.solver.value = fit.objective;
  return fit;
}

}  // namespace tessera::estimators
