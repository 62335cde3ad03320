// Least squares by its normal equations: the closed form of fit_linear's "squared" objective,
// mean (x w + b - y)^2 / 2 + l2 / 2 |w|^2, on standardised features when standardising.
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
  // Solve (gram + l2 I) w = rhs.
  std::vector<double>& a = gram;
  for (int64_t i = 0; i < d; ++i) a[static_cast<size_t>(i * d + i)] += options.l2;
  std::vector<double> w = rhs;
  const int order = static_cast<int>(d);
  const int one = 1;
  int info = 0;
  dposv_("U", &order, &one, a.data(), &order, w.data(), &order, &info);
  if (info != 0) return std::nullopt;  // not positive definite: collinear features, no l2

  double penalty = 0.0;
  for (double v : w) penalty += v * v;
  LinearFit fit;
  fit.rows = static_cast<int64_t>(n);
  fit.solver.x = w;
  fit.solver.converged = true;
  fit.solver.stop = "the normal equations solved";
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
  fit.objective = 0.5 * squares[0] / n + 0.5 * options.l2 * penalty;
  fit.solver.value = fit.objective;
  return fit;
}

}  // namespace tessera::estimators
