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

// What data must look like to feed the model: the training set's samples (and their class labels
// for a classifier), or a regression's features (its table also holds the target).
DataLayout layout_of(const EstimatorTable& train, const Config& config, int64_t features) {
  DataLayout layout;
  layout.sample_shape = train.target >= 0 ? Shape{features} : train.data->sample_shape();
  const bool classifier =
      !is_regression(config.model) && config.model.type != "kmeans" && config.model.type != "pca";
  if (classifier) layout.class_labels = train.data->class_labels();
  return layout;
}

void add_scores(nlohmann::json& line, const std::string& prefix, const Scores& scores) {
  for (const auto& [name, value] : scores) line[prefix + "_" + name] = value;
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
  const auto on_iteration = [&](int64_t iteration, double value) {
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
  // Every process holds its rows before the clock starts: fit_s times the fit, not a peer still
  // reading its file.
  if (group != nullptr && group->size() > 1) group->barrier()->wait();
  const auto fit_start = Clock::now();
  EstimatorFit fit = fit_estimator(config.model, config.train.seed, *rows, group, on_iteration);
  const EstimatorModel& model = *fit.model;
  EstimatorResult r;
  r.fit_seconds = std::chrono::duration<double>(Clock::now() - fit_start).count();
  r.model = config.model.type;
  r.rows = fit.rows;
  r.iterations = fit.iterations;
  r.objective = fit.objective;
  r.converged = fit.converged;
  r.stop = fit.stop;
  r.train = model.score(*rows, group);
  if (!config.data.test.empty()) {
    const EstimatorTable test = open_estimator_table(config.data.test, config, "data.test");
    std::unique_ptr<estimators::RowSource> test_rows = table_rows(test, group);
    check_feature_count(*test_rows, config.data.test, model.features(), config.data.train,
                        config.source, "data.test");
    r.test = model.score(*test_rows, group);
  }
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (reports) {
    r.saved_to = (std::filesystem::path(config.train.run_dir) / "model.ckpt").string();
    write_checkpoint(r.saved_to,
                     estimator_checkpoint(config, layout_of(train, config, model.features()), model,
                                          r.iterations));
  }
  if (metrics.is_open()) {
    nlohmann::json line{{"model", r.model},           {"rows", r.rows},
                        {"iterations", r.iterations}, {"objective", r.objective},
                        {"converged", r.converged},   {"wall_s", r.wall_seconds},
                        {"fit_s", r.fit_seconds}};
    add_scores(line, "train", r.train);
    add_scores(line, "test", r.test);
    metrics << line.dump() << "\n" << std::flush;
  }
  return r;
}

}  // namespace tessera::train
