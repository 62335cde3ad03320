#include "tessera/train/estimator_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "als_estimator.h"
#include "tessera/core/error.h"
#include "tessera/estimators/boosted_trees.h"
#include "tessera/estimators/kmeans.h"
#include "tessera/estimators/linear_model.h"
#include "tessera/estimators/naive_bayes.h"
#include "tessera/estimators/pca.h"
#include "tessera/estimators/roc_auc.h"

namespace tessera::train {
namespace {

// The area under the ROC curve of a two-class model's probability of class 1 over the rows.
double binary_auc(const EstimatorModel& model, estimators::RowSource& rows,
                  comm::ProcessGroup* group) {
  std::vector<estimators::AucHistogram> parts(static_cast<size_t>(rows.parts()));
  rows.for_each_block_in_parts([&](const estimators::RowBlock& b, int part) {
    std::vector<double> predicted;
    std::vector<float> p;
    model.predict(b.x, predicted, p);
    for (int64_t r = 0; r < b.rows(); ++r) {
      parts[static_cast<size_t>(part)].add(p[static_cast<size_t>(2 * r + 1)],
                                           b.y[static_cast<size_t>(r)] == 1.0);
    }
  });
  for (size_t i = 1; i < parts.size(); ++i) parts[0].add(parts[i]);
  parts[0].sum_over(group);
  return parts[0].auc();
}

// Scores with the ROC AUC added for a model of two classes with probabilities.
Scores with_auc(Scores scores, const EstimatorModel& model, estimators::RowSource& rows,
                comm::ProcessGroup* group) {
  if (model.classes() == 2 && model.probability_columns() == 2) {
    scores.emplace_back("auc", binary_auc(model, rows, group));
  }
  return scores;
}

class LinearEstimator : public EstimatorModel {
 public:
  explicit LinearEstimator(estimators::LinearModel model) : m_(std::move(model)) {}

  [[nodiscard]] int64_t features() const override { return m_.features; }
  [[nodiscard]] int64_t classes() const override { return m_.classes; }
  [[nodiscard]] int64_t probability_columns() const override {
    return m_.loss == "logistic" ? m_.classes : 0;
  }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    const estimators::PredictionScore s = estimators::score_linear(m_, rows, group);
    if (m_.classes == 0) return {{"rmse", s.rmse}, {"r2", s.r2}};
    if (m_.loss == "logistic") {
      return with_auc({{"accuracy", s.accuracy}, {"log_loss", s.log_loss}}, *this, rows, group);
    }
    return {{"accuracy", s.accuracy}};
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const override {
    const Tensor margins = m_.margins(x);
    predicted = m_.predict_from(margins);
    probabilities = m_.probabilities_from(margins);
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::LinearModel m_;
};

class KMeansEstimator : public EstimatorModel {
 public:
  explicit KMeansEstimator(estimators::KMeansModel model) : m_(std::move(model)) {}

  [[nodiscard]] int64_t features() const override { return m_.features; }
  [[nodiscard]] int64_t classes() const override { return m_.clusters; }
  [[nodiscard]] int64_t probability_columns() const override { return 0; }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    return {{"inertia", estimators::score_kmeans(m_, rows, group).inertia}};
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const override {
    const auto n = static_cast<size_t>(x.size(0));
    std::vector<int64_t> labels(n);
    std::vector<double> distances(n);
    m_.assign(x, labels, distances);
    predicted.assign(labels.begin(), labels.end());
    probabilities.clear();
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::KMeansModel m_;
};

class NaiveBayesEstimator : public EstimatorModel {
 public:
  explicit NaiveBayesEstimator(estimators::NaiveBayesModel model) : m_(std::move(model)) {}

  [[nodiscard]] int64_t features() const override { return m_.features; }
  [[nodiscard]] int64_t classes() const override { return m_.classes; }
  [[nodiscard]] int64_t probability_columns() const override { return m_.classes; }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    const estimators::NaiveBayesScore s = estimators::score_naive_bayes(m_, rows, group);
    return with_auc({{"accuracy", s.accuracy}, {"log_loss", s.log_loss}}, *this, rows, group);
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const override {
    const std::vector<double> jll = m_.log_likelihoods(x);
    const int64_t k = m_.classes;
    const auto n = static_cast<size_t>(x.size(0));
    predicted.assign(n, 0.0);
    probabilities.assign(n * static_cast<size_t>(k), 0.0F);
    for (size_t r = 0; r < n; ++r) {
      const double* row = jll.data() + r * static_cast<size_t>(k);
      const int64_t best = std::max_element(row, row + k) - row;
      double total = 0.0;
      for (int64_t c = 0; c < k; ++c) total += std::exp(row[c] - row[best]);
      for (int64_t c = 0; c < k; ++c) {
        probabilities[r * static_cast<size_t>(k) + static_cast<size_t>(c)] =
            static_cast<float>(std::exp(row[c] - row[best]) / total);
      }
      predicted[r] = static_cast<double>(best);
    }
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::NaiveBayesModel m_;
};

class PcaEstimator : public EstimatorModel {
 public:
  explicit PcaEstimator(estimators::PcaModel model) : m_(std::move(model)) {}

  [[nodiscard]] int64_t features() const override { return m_.features; }
  [[nodiscard]] int64_t classes() const override { return 0; }
  [[nodiscard]] int64_t probability_columns() const override { return m_.components; }
  [[nodiscard]] bool transforms() const override { return true; }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    return {{"explained_variance", estimators::explained_variance(m_, rows, group)}};
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& coordinates) const override {
    const std::vector<double> t = m_.transform(x);
    predicted.assign(static_cast<size_t>(x.size(0)), 0.0);
    coordinates.assign(t.begin(), t.end());
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::PcaModel m_;
};

class TreesEstimator : public EstimatorModel {
 public:
  explicit TreesEstimator(estimators::BoostedTreesModel model) : m_(std::move(model)) {}

  [[nodiscard]] int64_t features() const override { return m_.features; }
  [[nodiscard]] int64_t classes() const override { return m_.classes; }
  [[nodiscard]] int64_t probability_columns() const override { return m_.classes; }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    const estimators::PredictionScore s = estimators::score_boosted_trees(m_, rows, group);
    if (m_.classes == 0) return {{"rmse", s.rmse}, {"r2", s.r2}};
    return with_auc({{"accuracy", s.accuracy}, {"log_loss", s.log_loss}}, *this, rows, group);
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const override {
    m_.predict(x, predicted, probabilities);
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::BoostedTreesModel m_;
};

EstimatorFit fit_trees(const ModelConfig& m, uint64_t seed, estimators::RowSource& rows,
                       comm::ProcessGroup* group,
                       std::function<void(int64_t, double)> on_iteration) {
  const TreeConfig& t = m.trees;
  estimators::BoostedTreesOptions o;
  o.objective = t.objective;
  o.rounds = t.rounds;
  o.learning_rate = t.learning_rate;
  o.max_depth = t.max_depth;
  o.grow_policy = t.grow_policy;
  o.max_leaves = t.max_leaves;
  o.max_bins = t.max_bins;
  o.min_child_weight = t.min_child_weight;
  o.reg_lambda = t.reg_lambda;
  o.reg_alpha = t.reg_alpha;
  o.min_split_loss = t.min_split_loss;
  o.subsample = t.subsample;
  o.colsample_bynode = t.colsample_bynode;
  o.parallel_trees = m.type == "random_forest" ? t.trees : 1;
  o.validation_fraction = t.validation_fraction;
  o.early_stopping_rounds = t.early_stopping_rounds;
  o.seed = seed;
  o.on_round = std::move(on_iteration);
  estimators::BoostedTreesFit fit = estimators::fit_boosted_trees(rows, group, o);
  if (m.type == "random_forest") {  // one round: no iterations to count
    fit.rounds = 0;
    fit.stop = detail::concat(t.trees, t.trees == 1 ? " tree" : " trees", " a class grown");
  }
  return {std::make_unique<TreesEstimator>(std::move(fit.model)),
          fit.rows,
          fit.rounds,
          fit.loss,
          true,
          fit.stop};
}

std::string linear_loss(const std::string& type) {
  if (type == "linear_regression") return "squared";
  if (type == "linear_svm") return "squared_hinge";
  return "logistic";
}

EstimatorFit fit_kmeans(const ModelConfig& m, uint64_t seed, estimators::RowSource& rows,
                        comm::ProcessGroup* group,
                        std::function<void(int64_t, double)> on_iteration) {
  estimators::KMeansOptions o;
  o.clusters = m.clusters;
  o.max_iterations = m.max_iter;
  o.tol = m.tol;
  o.seed = seed;
  double last = 0.0;
  o.on_iteration = [&](int64_t iteration, double inertia) {
    last = inertia;
    if (on_iteration) on_iteration(iteration, inertia);
  };
  estimators::KMeansFit fit = estimators::fit_kmeans(rows, group, o);
  return {std::make_unique<KMeansEstimator>(std::move(fit.model)),
          fit.rows,
          fit.iterations,
          last,
          fit.converged,
          fit.stop};
}

EstimatorFit fit_linear(const ModelConfig& m, estimators::RowSource& rows,
                        comm::ProcessGroup* group,
                        std::function<void(int64_t, double)> on_iteration) {
  estimators::LinearOptions o;
  o.loss = linear_loss(m.type);
  o.l2 = m.l2;
  o.l1 = m.l1;
  o.fit_intercept = m.fit_intercept;
  o.standardize = m.standardize;
  o.solver.max_iterations = m.max_iter;
  o.solver.gradient_tolerance = m.tol;
  o.solver.on_iteration = std::move(on_iteration);
  estimators::LinearFit fit = estimators::fit_linear(rows, group, o);
  return {std::make_unique<LinearEstimator>(std::move(fit.model)),
          fit.rows,
          fit.solver.iterations,
          fit.objective,
          fit.solver.converged,
          fit.solver.stop};
}

}  // namespace

std::string describe_scores(const std::string& prefix, const Scores& scores) {
  std::string text;
  for (const auto& [name, value] : scores) {
    char buf[96];
    const char* who = prefix.empty() ? "" : " ";
    if (name == "accuracy") {
      std::snprintf(buf, sizeof buf, "%s%saccuracy %.2f%%", prefix.c_str(), who, 100.0 * value);
    } else if (name == "explained_variance") {
      std::snprintf(buf, sizeof buf, "%s%sexplained variance %.2f%%", prefix.c_str(), who,
                    100.0 * value);
    } else if (name == "inertia") {
      std::snprintf(buf, sizeof buf, "%s%sinertia %.8g", prefix.c_str(), who, value);
    } else {
      const std::string shown = name == "log_loss"         ? "log loss"
                                : name == "auc"            ? "AUC"
                                : name == "rmse"           ? "RMSE"
                                : name == "r2"             ? "R2"
                                : name == "precision_at_k" ? "precision@k"
                                                           : name;
      std::snprintf(buf, sizeof buf, "%s%s%s %.4f", prefix.c_str(), who, shown.c_str(), value);
    }
    text += (text.empty() ? "" : ", ") + std::string(buf);
  }
  return text;
}

EstimatorFit fit_estimator(const ModelConfig& model, uint64_t seed, estimators::RowSource& rows,
                           comm::ProcessGroup* group,
                           std::function<void(int64_t, double)> on_iteration) {
  if (model.type == "pca") {
    estimators::PcaModel m = estimators::fit_pca(rows, group, model.components);
    double kept = 0.0;
    for (double v : m.variances) kept += v;
    return {std::make_unique<PcaEstimator>(std::move(m)),
            estimators::count_rows(rows, group),
            0,
            kept,
            true,
            "one pass"};
  }
  if (model.type == "naive_bayes") {
    estimators::NaiveBayesOptions o{model.distribution, model.alpha, model.var_smoothing,
                                    model.binarize};
    estimators::NaiveBayesModel m = estimators::fit_naive_bayes(rows, group, o);
    return {std::make_unique<NaiveBayesEstimator>(std::move(m)),
            estimators::count_rows(rows, group),
            0,
            0.0,
            true,
            "one pass"};
  }
  if (model.type == "kmeans") return fit_kmeans(model, seed, rows, group, std::move(on_iteration));
  if (model.type == "als")
    return fit_als_estimator(model, seed, rows, group, std::move(on_iteration));
  if (model.type == "boosted_trees" || model.type == "random_forest") {
    return fit_trees(model, seed, rows, group, std::move(on_iteration));
  }
  return fit_linear(model, rows, group, std::move(on_iteration));
}

std::unique_ptr<EstimatorModel> read_estimator_model(const ModelConfig& model, BinaryReader& in) {
  const std::string& type = model.type;
  if (type == "als") return read_als_estimator(model, in);
  if (type == "kmeans") {
    return std::make_unique<KMeansEstimator>(estimators::KMeansModel::read(in));
  }
  if (type == "pca") return std::make_unique<PcaEstimator>(estimators::PcaModel::read(in));
  if (type == "boosted_trees" || type == "random_forest") {
    return std::make_unique<TreesEstimator>(estimators::BoostedTreesModel::read(in));
  }
  if (type == "naive_bayes") {
    return std::make_unique<NaiveBayesEstimator>(estimators::NaiveBayesModel::read(in));
  }
  estimators::LinearModel m = estimators::LinearModel::read(in);
  if (m.loss != linear_loss(type)) {
    throw FormatError(in.source() + ": a " + type + " config with a model of loss '" + m.loss +
                      "'");
  }
  return std::make_unique<LinearEstimator>(std::move(m));
}

}  // namespace tessera::train
