#include "tessera/estimators/linear_model.h"

#include "collective.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/tensor/matmul.h"

namespace tessera::estimators {
namespace {

bool is_classifier(const std::string& loss) { return loss != "squared"; }

void check_target(const RowSource& rows, const std::string& loss, int64_t row, double y) {
  if (!std::isfinite(y)) {
    throw FormatError(detail::concat(rows.origin(row), ": the target ", y, " is not a number"));
  }
  if (!is_classifier(loss)) return;
  if (y < 0 || y != std::floor(y)) {
    throw FormatError(detail::concat(rows.origin(row), ": label ", y, " is not a class (",
                                     "a whole number from 0) for loss \"", loss, "\""));
  }
  if (loss == "squared_hinge" && y > 1) {
    throw FormatError(
        detail::concat(rows.origin(row), ": label ", y,
                       " is not 0 or 1: loss \"squared_hinge\" separates two classes"));
  }
}

enum class Loss : std::uint8_t { kSquared, kLogistic, kSquaredHinge };

Loss loss_of(const std::string& name) {
  if (name == "squared") return Loss::kSquared;
  return name == "logistic" ? Loss::kLogistic : Loss::kSquaredHinge;
}

// Loss of one row's margins m[0..K) against target y; writes dloss/dm to r. Binary models have
// one margin (K = 1) whatever their classes.
double row_loss(Loss loss, const float* m, int64_t k, double y, float* r) {
  if (loss == Loss::kSquared) {
    const double e = m[0] - y;
    r[0] = static_cast<float>(e);
    return 0.5 * e * e;
  }
  if (loss == Loss::kSquaredHinge) {
    const double t = y > 0.5 ? 1.0 : -1.0;
    const double z = 1.0 - t * m[0];
    r[0] = z > 0 ? static_cast<float>(-2.0 * t * z) : 0.0F;
    return z > 0 ? z * z : 0.0;
  }
  if (k == 1) {  // binary logistic: log(1 + e^m) - y m
    const double v = m[0];
    const double softplus = std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v)));
    r[0] = static_cast<float>(1.0 / (1.0 + std::exp(-v)) - y);
    return softplus - y * v;
  }
  double top = m[0];
  for (int64_t c = 1; c < k; ++c) top = std::max(top, static_cast<double>(m[c]));
  double total = 0.0;
  for (int64_t c = 0; c < k; ++c) total += std::exp(m[c] - top);
  const double lse = top + std::log(total);
  const auto label = static_cast<int64_t>(y);
  for (int64_t c = 0; c < k; ++c) {
    r[c] = static_cast<float>(std::exp(m[c] - lse) - (c == label ? 1.0 : 0.0));
  }
  return lse - m[label];
}

void check_options(const LinearOptions& o) {
  if (o.loss != "squared" && o.loss != "logistic" && o.loss != "squared_hinge") {
    throw ValueError("fit_linear: loss \"" + o.loss +
                     "\" is not one of: squared, logistic, squared_hinge");
  }
  if (!(o.l2 >= 0) || !std::isfinite(o.l2) || !(o.l1 >= 0) || !std::isfinite(o.l1)) {
    throw ValueError(
        detail::concat("fit_linear: l2 ", o.l2, " and l1 ", o.l1, " must be finite numbers >= 0"));
  }
}

}  // namespace

LinearProblem::LinearProblem(RowSource& rows, comm::ProcessGroup* group, LinearOptions options)
    : rows_(rows), group_(group), options_(std::move(options)), features_(rows.num_features()) {
  check_options(options_);
  read_facts();
  outputs_ = options_.loss == "logistic" && classes_ > 2 ? classes_ : 1;
}

void LinearProblem::read_facts() {
  const int64_t d = features_;
  const bool standardize = options_.standardize;
  // [rows, features' sums, features' sums of squares]; the largest label apart.
  std::vector<double> sums(static_cast<size_t>(1 + (standardize ? 2 * d : 0)), 0.0);
  double largest = -1.0;
  rows_.for_each_block([&](const RowBlock& b) {
    sums[0] += static_cast<double>(b.rows());
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double y = b.y[static_cast<size_t>(r)];
      check_target(rows_, options_.loss, b.first + r, y);
      largest = std::max(largest, y);
    }
    if (!standardize) return;
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      for (int64_t j = 0; j < d; ++j) {
        const double v = x[r * d + j];
        sums[static_cast<size_t>(1 + j)] += v;
        sums[static_cast<size_t>(1 + d + j)] += v * v;
      }
    }
  });
  sum_over(group_, sums, comm::ReduceOp::kSum);
  check_every_process_has_rows(rows_, group_, "linear model");
  std::vector<double> most{largest};
  sum_over(group_, most, comm::ReduceOp::kMax);
  total_rows_ = static_cast<int64_t>(sums[0]);
  if (total_rows_ == 0) throw ValueError("linear model: no rows on any process");
  if (is_classifier(options_.loss)) {
    classes_ = static_cast<int64_t>(most[0]) + 1;
    if (classes_ < 2) {
      throw ValueError(detail::concat("linear model: every label is ", most[0],
                                      ": a classifier needs two classes at least"));
    }
    if (options_.loss == "squared_hinge") classes_ = 2;
  }
  if (!standardize) return;
  mean_.resize(static_cast<size_t>(d));
  scale_.resize(static_cast<size_t>(d));
  const auto n = static_cast<double>(total_rows_);
  for (int64_t j = 0; j < d; ++j) {
    const double mean = sums[static_cast<size_t>(1 + j)] / n;
    const double var = std::max(0.0, sums[static_cast<size_t>(1 + d + j)] / n - mean * mean);
    mean_[static_cast<size_t>(j)] = mean;
    scale_[static_cast<size_t>(j)] = var > 0 ? std::sqrt(var) : 1.0;
  }
}

int64_t LinearProblem::num_parameters() const {
  return features_ * outputs_ + (options_.fit_intercept ? outputs_ : 0);
}

LinearModel LinearProblem::model(const std::vector<double>& p) const {
  const int64_t d = features_;
  const int64_t k = outputs_;
  LinearModel m;
  m.loss = options_.loss;
  m.features = d;
  m.classes = classes_;
  m.outputs = k;
  m.weights.assign(static_cast<size_t>(d * k), 0.0F);
  m.intercept.assign(static_cast<size_t>(k), 0.0F);
  for (int64_t c = 0; c < k; ++c) {
    double shift = options_.fit_intercept ? p[static_cast<size_t>(d * k + c)] : 0.0;
    for (int64_t j = 0; j < d; ++j) {
      double v = p[static_cast<size_t>(j * k + c)];
      if (!scale_.empty()) {
        v /= scale_[static_cast<size_t>(j)];
        shift -= v * mean_[static_cast<size_t>(j)];
      }
      m.weights[static_cast<size_t>(j * k + c)] = static_cast<float>(v);
    }
    m.intercept[static_cast<size_t>(c)] = static_cast<float>(shift);
  }
  return m;
}

double LinearProblem::operator()(const std::vector<double>& p, std::vector<double>& grad) {
  const int64_t d = features_;
  const int64_t k = outputs_;
  const LinearModel m = model(p);
  const Tensor weights = Tensor::from_vector(m.weights, {d, k});
  // [loss, X^T R (features x outputs), the column sums of R (outputs)]
  std::vector<double> sums = sum_blocks(rows_, static_cast<size_t>(1 + d * k + k),
                                        [&](const RowBlock& block, std::vector<double>& s) {
                                          add_block(block, weights, m.intercept, s);
                                        });
  sum_over(group_, sums, comm::ReduceOp::kSum);
  const auto n = static_cast<double>(total_rows_);
  double value = sums[0] / n;
  grad.assign(p.size(), 0.0);
  for (int64_t c = 0; c < k; ++c) {
    const double rsum = sums[static_cast<size_t>(1 + d * k + c)];
    for (int64_t j = 0; j < d; ++j) {
      const auto at = static_cast<size_t>(j * k + c);
      double g = sums[1 + at];
      if (!scale_.empty()) {
        g = (g - mean_[static_cast<size_t>(j)] * rsum) / scale_[static_cast<size_t>(j)];
      }
      grad[at] = g / n + options_.l2 * p[at];
      value += 0.5 * options_.l2 * p[at] * p[at];
    }
    if (options_.fit_intercept) grad[static_cast<size_t>(d * k + c)] = rsum / n;
  }
  return value;
}

void LinearProblem::add_block(const RowBlock& block, const Tensor& weights,
                              const std::vector<float>& b, std::vector<double>& sums) const {
  const int64_t rows = block.rows();
  const int64_t d = features_;
  const int64_t k = outputs_;
  Tensor margins = Tensor::empty({rows, k});
  matmul_into(block.x, weights, margins);
  Tensor residual = Tensor::empty({rows, k});
  float* m = margins.data<float>();
  float* r = residual.data<float>();
  const Loss kind = loss_of(options_.loss);
  double loss = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < k; ++c) m[i * k + c] += b[static_cast<size_t>(c)];
    loss += row_loss(kind, m + i * k, k, block.y[static_cast<size_t>(i)], r + i * k);
  }
  sums[0] += loss;
  Tensor g = Tensor::empty({d, k});
  matmul_into(block.x.t(), residual, g);
  const float* gp = g.data<float>();
  for (int64_t e = 0; e < d * k; ++e) sums[static_cast<size_t>(1 + e)] += gp[e];
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < k; ++c) sums[static_cast<size_t>(1 + d * k + c)] += r[i * k + c];
  }
}

LinearFit fit_linear(RowSource& rows, comm::ProcessGroup* group, const LinearOptions& options) {
  if (options.loss == "squared" && options.closed_form &&
      rows.num_features() <= kMaxClosedFormFeatures) {
    check_options(options);
    if (auto fit = solve_least_squares(rows, group, options)) return *std::move(fit);
  }
  LinearProblem problem(rows, group, options);
  LinearFit fit;
  fit.rows = problem.rows();
  const auto objective = [&](const std::vector<double>& p, std::vector<double>& g) {
    return problem(p, g);
  };
  std::vector<double> start(static_cast<size_t>(problem.num_parameters()), 0.0);
  if (options.l1 > 0) {
    // The weights come first in the parameters; the intercepts after are not penalised.
    std::vector<double> l1(start.size(), 0.0);
    const auto weights = static_cast<size_t>(rows.num_features() * problem.outputs());
    std::fill(l1.begin(), l1.begin() + static_cast<std::ptrdiff_t>(weights), options.l1);
    fit.solver = minimize_owlqn(objective, std::move(start), l1, options.solver);
  } else {
    fit.solver = minimize_lbfgs(objective, std::move(start), options.solver);
  }
  fit.objective = fit.solver.value;
  fit.model = problem.model(fit.solver.x);
  return fit;
}

Tensor LinearModel::margins(const Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != features) {
    throw ShapeError(detail::concat("LinearModel::margins: rows of ", features,
                                    " features expected, got ", shape_str(x.shape())));
  }
  Tensor out = Tensor::empty({x.size(0), outputs});
  matmul_into(x, Tensor::from_vector(weights, {features, outputs}), out);
  float* m = out.data<float>();
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t c = 0; c < outputs; ++c) m[i * outputs + c] += intercept[static_cast<size_t>(c)];
  }
  return out;
}

std::vector<double> LinearModel::predict(const Tensor& x) const { return predict_from(margins(x)); }

std::vector<double> LinearModel::predict_from(const Tensor& m) const {
  const float* p = m.data<float>();
  std::vector<double> out(static_cast<size_t>(m.size(0)));
  for (int64_t i = 0; i < m.size(0); ++i) {
    const float* row = p + i * outputs;
    if (classes == 0) {
      out[static_cast<size_t>(i)] = row[0];
    } else if (outputs == 1) {
      out[static_cast<size_t>(i)] = row[0] > 0 ? 1.0 : 0.0;
    } else {
      out[static_cast<size_t>(i)] = static_cast<double>(std::max_element(row, row + outputs) - row);
    }
  }
  return out;
}

std::vector<float> LinearModel::probabilities_from(const Tensor& m) const {
  if (loss != "logistic") return {};
  const float* p = m.data<float>();
  std::vector<float> out(static_cast<size_t>(m.size(0) * classes));
  for (int64_t i = 0; i < m.size(0); ++i) {
    float* row = out.data() + i * classes;
    if (outputs == 1) {
      row[1] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(p[i]))));
      row[0] = 1.0F - row[1];
      continue;
    }
    const float* margins = p + i * outputs;
    const double top = *std::max_element(margins, margins + outputs);
    double total = 0.0;
    for (int64_t c = 0; c < outputs; ++c) total += std::exp(margins[c] - top);
    for (int64_t c = 0; c < outputs; ++c) {
      row[c] = static_cast<float>(std::exp(margins[c] - top) / total);
    }
  }
  return out;
}

PredictionScore score_linear(const LinearModel& model, RowSource& rows, comm::ProcessGroup* group) {
  // [rows, right, log loss, squared error, sum y, sum y^2]
  std::vector<double> sums = sum_blocks(rows, 6, [&](const RowBlock& b, std::vector<double>& sums) {
    std::vector<float> r(static_cast<size_t>(model.outputs));
    const Tensor m = model.margins(b.x);
    const std::vector<double> predicted = model.predict_from(m);
    for (int64_t i = 0; i < b.rows(); ++i) {
      const double y = b.y[static_cast<size_t>(i)];
      sums[0] += 1;
      sums[1] += predicted[static_cast<size_t>(i)] == y ? 1 : 0;
      if (model.loss == "logistic") {
        sums[2] += row_loss(Loss::kLogistic, m.data<float>() + i * model.outputs, model.outputs, y,
                            r.data());
      }
      const double e = predicted[static_cast<size_t>(i)] - y;
      sums[3] += e * e;
      sums[4] += y;
      sums[5] += y * y;
    }
  });
  sum_over(group, sums, comm::ReduceOp::kSum);
  return prediction_score(sums);
}

}  // namespace tessera::estimators
