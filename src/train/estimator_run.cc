#include "tessera/train/estimator_run.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "tessera/core/error.h"
#include "tessera/data/csv_reader.h"
#include "tessera/data/in_memory_dataset.h"
#include "tessera/train/data_source.h"

namespace tessera::train {
namespace {

using Clock = std::chrono::steady_clock;

// A data set and which of its features is the target (-1: its labels are).
struct Table {
  std::shared_ptr<data::Dataset> data;
  int64_t target = -1;
};

// A regression's target is a CSV column (data.label_column, a name or a 0-based index): the file
// is read as features only and the target taken out of each row.
Table open_table(const std::string& spec, const Config& config, const std::string& key) {
  if (config.model.type != "linear_regression") {
    return {std::shared_ptr<data::Dataset>(open_dataset(spec, config, key)), -1};
  }
  if (spec.rfind("csv:", 0) != 0) {
    throw ConfigError(config.source, config.model.line, key,
                      "a regression reads its target from a CSV column: expected csv:PATH "
                      "(and data.label_column), got '" +
                          spec + "'");
  }
  const std::string path = spec.substr(4);
  const std::string& column = config.data.label_column;
  data::CsvReader header(path, data::CsvOptions{});
  const auto& names = header.column_names();
  int64_t target = -1;
  if (auto at = std::find(names.begin(), names.end(), column); at != names.end()) {
    target = at - names.begin();
  } else {
    int64_t index = 0;
    const auto [end, ec] = std::from_chars(column.data(), column.data() + column.size(), index);
    if (ec == std::errc() && end == column.data() + column.size() && index >= 0 &&
        index < static_cast<int64_t>(names.size())) {
      target = index;
    }
  }
  if (target < 0) {
    throw ConfigError(config.source, 0, "data.label_column",
                      "'" + column + "' is no column of " + path + " (its columns: " +
                          (names.empty() ? std::string() : names.front()) + ", ...)");
  }
  return {std::make_shared<data::InMemoryDataset>(data::read_csv(path, data::CsvOptions{})),
          target};
}

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

std::unique_ptr<estimators::RowSource> rows_of(const Table& t, comm::ProcessGroup* group) {
  return estimators::dataset_rows(t.data, {.rank = group ? group->rank() : 0,
                                           .ranks = group ? group->size() : 1,
                                           .target_feature = t.target});
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
  const Table train = open_table(config.data.train, config, "data.train");
  std::unique_ptr<estimators::RowSource> rows = rows_of(train, group);
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
    const Table test = open_table(config.data.test, config, "data.test");
    std::unique_ptr<estimators::RowSource> test_rows = rows_of(test, group);
    if (test_rows->num_features() != fit.model.features) {
      throw ConfigError(
          config.source, 0, "data.test",
          detail::concat(config.data.test, " has ", test_rows->num_features(), " features where ",
                         config.data.train, " has ", fit.model.features));
    }
    r.test = estimators::score_linear(fit.model, *test_rows, group);
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
