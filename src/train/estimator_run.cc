#include "tessera/train/estimator_run.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "estimator_data.h"
#include "tessera/core/error.h"
#include "tessera/train/saved_estimator.h"

namespace tessera::train {
namespace {

using Clock = std::chrono::steady_clock;

estimators::LinearOptions linear_options(const ModelConfig& m) {
  estimators::LinearOptions o;
  o.loss = m.type == "linear_regression" ? "squared"
           : m.type == "linear_svm"      ? "squared_hinge"
                                         : "logistic";
  o.l2 = m.l2;
  o.fit_intercept = m.fit_intercept;
  o.standardize = m.standardize;
  o.solver.max_iterations = m.max_iter;
  o.solver.gradient_tolerance = m.tol;
  return o;
}

// What data must look like to feed the model: the training set's samples, or a regression's
// features (its table also holds the target).
DataLayout layout_of(const EstimatorTable& train, const estimators::LinearModel& model) {
  DataLayout layout;
  layout.sample_shape = train.target >= 0 ? Shape{model.features} : train.data->sample_shape();
  if (train.target < 0) layout.class_labels = train.data->class_labels();
  return layout;
}

void add_scores(nlohmann::json& line, const std::string& prefix, const std::string& loss,
                const estimators::LinearScore& s) {
  if (loss == "squared") {
    line[prefix + "_rmse"] = s.rmse;
    line[prefix + "_r2"] = s.r2;
    return;
  }
  line[prefix + "_accuracy"] = s.accuracy;
  if (loss == "logistic") line[prefix + "_log_loss"] = s.log_loss;
}

}  // namespace

EstimatorResult run_estimator(const Config& config, const EstimatorRunOptions& options) {
  const auto start = Clock::now();
  comm::ProcessGroup* group = options.group;
  const bool reports = group == nullptr || group->rank() == 0;
  std::FILE* out = reports ? options.progress : nullptr;
  std::ofstream metrics;
  if (reports) {
    std::filesystem::create_directories(config.train.run_dir);
    const auto path = std::filesystem::path(config.train.run_dir) / "metrics.jsonl";
    metrics.open(path, std::ios::trunc);
    if (!metrics) throw Error("cannot write " + path.string());
  }
  const EstimatorTable train = open_estimator_table(config.data.train, config, "data.train");
  std::unique_ptr<estimators::RowSource> rows = table_rows(train, group);
  estimators::LinearOptions o = linear_options(config.model);
  o.solver.on_iteration = [&](int64_t iteration, double value) {
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    if (metrics.is_open()) {
      metrics
          << nlohmann::json{{"iteration", iteration}, {"objective", value}, {"wall_s", wall}}.dump()
          << "\n";
    }
    if (out != nullptr && (iteration == 1 || iteration % 10 == 0)) {
      std::fprintf(out, "iteration %lld: objective %.6g (%.1f s)\n",
                   static_cast<long long>(iteration), value, wall);
    }
  };
  const auto fit_start = Clock::now();
  const estimators::LinearFit fit = estimators::fit_linear(*rows, group, o);
  const double fit_seconds = std::chrono::duration<double>(Clock::now() - fit_start).count();
  EstimatorResult r;
  r.model = config.model.type;
  r.rows = fit.rows;
  r.iterations = fit.solver.iterations;
  r.objective = fit.objective;
  r.converged = fit.solver.converged;
  r.stop = fit.solver.stop;
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.fit_seconds = fit_seconds;
  r.train = estimators::score_linear(fit.model, *rows, group);
  if (!config.data.test.empty()) {
    const EstimatorTable test = open_estimator_table(config.data.test, config, "data.test");
    std::unique_ptr<estimators::RowSource> test_rows = table_rows(test, group);
    check_feature_count(*test_rows, config.data.test, fit.model.features, config.data.train,
                        config.source, "data.test");
    r.test = estimators::score_linear(fit.model, *test_rows, group);
  }
  if (reports) {
    r.saved_to = (std::filesystem::path(config.train.run_dir) / "model.ckpt").string();
    write_checkpoint(
        r.saved_to,
        estimator_checkpoint({config, layout_of(train, fit.model), fit.model}, r.iterations));
  }
  if (metrics.is_open()) {
    nlohmann::json line{{"model", r.model},           {"rows", r.rows},
                        {"iterations", r.iterations}, {"objective", r.objective},
                        {"converged", r.converged},   {"wall_s", r.wall_seconds},
                        {"fit_s", r.fit_seconds}};
    add_scores(line, "train", o.loss, r.train);
    if (r.test.rows > 0) add_scores(line, "test", o.loss, r.test);
    metrics << line.dump() << "\n" << std::flush;
  }
  return r;
}

}  // namespace tessera::train
