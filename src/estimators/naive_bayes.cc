#include "tessera/estimators/naive_bayes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "collective.h"
#include "tessera/core/error.h"

namespace tessera::estimators {
namespace {

constexpr uint32_t kNaiveBayesVersion = 1;
constexpr int64_t kMaxBayesFeatures = int64_t{1} << 32;
constexpr int64_t kMaxBayesClasses = int64_t{1} << 20;

bool known(const std::string& distribution) {
  return distribution == "gaussian" || distribution == "multinomial" || distribution == "bernoulli";
}

void check_options(const NaiveBayesOptions& o) {
  if (!known(o.distribution)) {
    throw ValueError("naive Bayes: distribution \"" + o.distribution +
                     "\" is not one of: gaussian, multinomial, bernoulli");
  }
  if (!(o.alpha >= 0) || !(o.var_smoothing >= 0) || !std::isfinite(o.binarize)) {
    throw ValueError("naive Bayes: alpha and var_smoothing must be >= 0, binarize a number");
  }
}

// Per class: [rows, the features' sums, (gaussian) their sums of squares], one part's or all.
class ClassSums {
 public:
  ClassSums(int64_t features, bool squares) : width_(1 + features * (squares ? 2 : 1)) {}

  std::span<double> of(int64_t label) {
    if (label >= classes()) sums_.resize(static_cast<size_t>((label + 1) * width_), 0.0);
    return {sums_.data() + label * width_, static_cast<size_t>(width_)};
  }
  [[nodiscard]] int64_t classes() const { return static_cast<int64_t>(sums_.size()) / width_; }
  void resize(int64_t classes) { sums_.resize(static_cast<size_t>(classes * width_), 0.0); }
  void add(const ClassSums& other) {
    resize(std::max(classes(), other.classes()));
    for (size_t e = 0; e < other.sums_.size(); ++e) sums_[e] += other.sums_[e];
  }
  std::vector<double>& all() { return sums_; }
  [[nodiscard]] double at(int64_t label, int64_t e) const {
    return sums_[static_cast<size_t>(label * width_ + e)];
  }

 private:
  int64_t width_;
  std::vector<double> sums_;
};

void add_row(const RowSource& rows, const NaiveBayesOptions& o, int64_t index, const float* x,
             int64_t d, std::span<double> s) {
  s[0] += 1;
  double* sums = s.data() + 1;
  if (o.distribution == "bernoulli") {
    const double cut = o.binarize;
    for (int64_t f = 0; f < d; ++f) sums[f] += x[f] > cut ? 1.0 : 0.0;
    return;
  }
  if (o.distribution == "multinomial") {
    for (int64_t f = 0; f < d; ++f) {
      if (!(x[f] >= 0)) {
        throw FormatError(detail::concat(rows.origin(index), ": feature ", f + 1, " is ", x[f],
                                         "; multinomial naive Bayes counts: no value below 0"));
      }
    }
    for (int64_t f = 0; f < d; ++f) sums[f] += x[f];
    return;
  }
  double* squares = sums + d;
  for (int64_t f = 0; f < d; ++f) {
    const double v = x[f];
    sums[f] += v;
    squares[f] += v * v;
  }
}

// Every process's class sums, the same on all.
ClassSums sum_classes(RowSource& rows, comm::ProcessGroup* group, const NaiveBayesOptions& o) {
  const int64_t d = rows.num_features();
  const bool squares = o.distribution == "gaussian";
  std::vector<ClassSums> parts(static_cast<size_t>(rows.parts()), ClassSums(d, squares));
  rows.for_each_block_in_parts([&](const RowBlock& b, int part) {
    ClassSums& sums = parts[static_cast<size_t>(part)];
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double y = b.y[static_cast<size_t>(r)];
      if (!(y >= 0) || y != std::floor(y) || y >= static_cast<double>(kMaxBayesClasses)) {
        throw FormatError(detail::concat(rows.origin(b.first + r), ": label ", y,
                                         " is not a class (a whole number from 0)"));
      }
      add_row(rows, o, b.first + r, x + r * d, d, sums.of(static_cast<int64_t>(y)));
    }
  });
  for (size_t p = 1; p < parts.size(); ++p) parts[0].add(parts[p]);
  ClassSums& all = parts[0];
  std::vector<double> classes{static_cast<double>(all.classes())};
  sum_over(group, classes, comm::ReduceOp::kMax);
  all.resize(static_cast<int64_t>(classes[0]));
  sum_over(group, all.all());
  return std::move(all);
}

}  // namespace

NaiveBayesModel fit_naive_bayes(RowSource& rows, comm::ProcessGroup* group,
                                const NaiveBayesOptions& options) {
  check_options(options);
  check_every_process_has_rows(rows, group, "naive Bayes");
  const ClassSums sums = sum_classes(rows, group, options);
  const int64_t d = rows.num_features();
  const int64_t k = sums.classes();
  if (k < 2) throw ValueError("naive Bayes: every row has label 0: a classifier needs two classes");
  NaiveBayesModel m;
  m.distribution = options.distribution;
  m.features = d;
  m.classes = k;
  m.binarize = options.binarize;
  m.first.assign(static_cast<size_t>(k * d), 0.0);
  m.second.assign(static_cast<size_t>(k * d), 0.0);
  double n = 0;
  for (int64_t c = 0; c < k; ++c) n += sums.at(c, 0);
  for (int64_t c = 0; c < k; ++c) {
    const double rows_c = sums.at(c, 0);
    m.log_prior.push_back(rows_c > 0 ? std::log(rows_c / n) : -INFINITY);
  }
  const auto at = [&](int64_t c, int64_t f) { return static_cast<size_t>(c * d + f); };
  if (options.distribution == "gaussian") {
    // var_smoothing is relative to the largest variance of a feature over all the rows.
    double largest = 0.0;
    for (int64_t f = 0; f < d; ++f) {
      double s = 0, s2 = 0;
      for (int64_t c = 0; c < k; ++c) s += sums.at(c, 1 + f), s2 += sums.at(c, 1 + d + f);
      largest = std::max(largest, s2 / n - (s / n) * (s / n));
    }
    const double epsilon = options.var_smoothing * largest;
    for (int64_t c = 0; c < k; ++c) {
      const double rows_c = std::max(sums.at(c, 0), 1.0);
      for (int64_t f = 0; f < d; ++f) {
        const double mean = sums.at(c, 1 + f) / rows_c;
        m.first[at(c, f)] = mean;
        m.second[at(c, f)] = std::max(0.0, sums.at(c, 1 + d + f) / rows_c - mean * mean) + epsilon;
      }
    }
    return m;
  }
  for (int64_t c = 0; c < k; ++c) {
    double total = 0.0;  // multinomial: the class's feature sum; bernoulli: its rows
    for (int64_t f = 0; f < d; ++f) total += sums.at(c, 1 + f);
    if (options.distribution == "bernoulli") total = sums.at(c, 0);
    const double spread = options.distribution == "bernoulli" ? 2.0 : static_cast<double>(d);
    for (int64_t f = 0; f < d; ++f) {
      const double p = (sums.at(c, 1 + f) + options.alpha) / (total + options.alpha * spread);
      m.first[at(c, f)] = std::log(p);
      if (options.distribution == "bernoulli") m.second[at(c, f)] = std::log1p(-p);
    }
  }
  return m;
}

std::vector<double> NaiveBayesModel::log_likelihoods(const Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != features) {
    throw ShapeError(detail::concat("NaiveBayesModel: rows of ", features,
                                    " features expected, got ", shape_str(x.shape())));
  }
  const int64_t n = x.size(0);
  const int64_t d = features;
  const float* rows = x.data<float>();
  std::vector<double> out(static_cast<size_t>(n * classes));
  // gaussian: each class's log prior less half its log normalisers, sum over f of log(2 pi var).
  std::vector<double> constant(log_prior);
  if (distribution == "gaussian") {
    for (int64_t c = 0; c < classes; ++c) {
      for (int64_t f = 0; f < d; ++f) {
        constant[static_cast<size_t>(c)] -=
            0.5 * std::log(2 * std::numbers::pi * second[static_cast<size_t>(c * d + f)]);
      }
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = rows + r * d;
    for (int64_t c = 0; c < classes; ++c) {
      const double* a = first.data() + c * d;
      const double* b = second.data() + c * d;
      double s = constant[static_cast<size_t>(c)];
      if (distribution == "gaussian") {
        double squares = 0.0;
        for (int64_t f = 0; f < d; ++f) {
          const double e = row[f] - a[f];
          squares += e * e / b[f];
        }
        s -= 0.5 * squares;
      } else if (distribution == "multinomial") {
        for (int64_t f = 0; f < d; ++f) s += row[f] * a[f];
      } else {
        for (int64_t f = 0; f < d; ++f) s += row[f] > binarize ? a[f] : b[f];
      }
      out[static_cast<size_t>(r * classes + c)] = s;
    }
  }
  return out;
}

NaiveBayesScore score_naive_bayes(const NaiveBayesModel& model, RowSource& rows,
                                  comm::ProcessGroup* group) {
  const int64_t k = model.classes;
  // [rows, right, log loss]
  std::vector<double> sums = sum_blocks(rows, 3, [&](const RowBlock& b, std::vector<double>& s) {
    const std::vector<double> jll = model.log_likelihoods(b.x);
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double* row = jll.data() + r * k;
      const int64_t best = std::max_element(row, row + k) - row;
      double total = 0.0;
      for (int64_t c = 0; c < k; ++c) total += std::exp(row[c] - row[best]);
      const double y = b.y[static_cast<size_t>(r)];
      const bool known = y >= 0 && y < static_cast<double>(k);
      const double py = known ? std::exp(row[static_cast<int64_t>(y)] - row[best]) / total : 0.0;
      s[0] += 1;
      s[1] += static_cast<double>(best) == y ? 1 : 0;
      s[2] -= std::log(std::max(py, std::numeric_limits<double>::epsilon()));
    }
  });
  sum_over(group, sums);
  if (sums[0] == 0) return {};
  return {static_cast<int64_t>(sums[0]), sums[1] / sums[0], sums[2] / sums[0]};
}

void NaiveBayesModel::write(BinaryWriter& out) const {
  out.write_u32(kNaiveBayesVersion);
  out.write_string(distribution);
  out.write_i64(features);
  out.write_i64(classes);
  out.write_f64(binarize);
  out.write_bytes(std::as_bytes(std::span(log_prior)));
  out.write_bytes(std::as_bytes(std::span(first)));
  out.write_bytes(std::as_bytes(std::span(second)));
}

NaiveBayesModel NaiveBayesModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kNaiveBayesVersion) {
    throw FormatError(detail::concat(in.source(), ": naive Bayes model version ", version,
                                     ", expected ", kNaiveBayesVersion));
  }
  NaiveBayesModel m;
  m.distribution = in.read_string(32);
  m.features = in.read_i64();
  m.classes = in.read_i64();
  m.binarize = in.read_f64();
  if (!known(m.distribution) || m.features < 1 || m.features > kMaxBayesFeatures || m.classes < 2 ||
      m.classes > kMaxBayesClasses) {
    throw FormatError(detail::concat(in.source(), ": no naive Bayes model is '", m.distribution,
                                     "' with ", m.classes, " classes of ", m.features,
                                     " features"));
  }
  const auto cells = static_cast<uint64_t>(m.features * m.classes);
  const uint64_t bytes = (2 * cells + static_cast<uint64_t>(m.classes)) * sizeof(double);
  if (auto left = in.remaining(); left && *left < bytes) {
    throw FormatError(
        detail::concat(in.source(), ": the model needs ", bytes, " bytes, ", *left, " left"));
  }
  m.log_prior.resize(static_cast<size_t>(m.classes));
  m.first.resize(static_cast<size_t>(cells));
  m.second.resize(static_cast<size_t>(cells));
  in.read_bytes(std::as_writable_bytes(std::span(m.log_prior)));
  in.read_bytes(std::as_writable_bytes(std::span(m.first)));
  in.read_bytes(std::as_writable_bytes(std::span(m.second)));
  return m;
}

}  // namespace tessera::estimators
