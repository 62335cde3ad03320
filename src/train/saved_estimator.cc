#include "tessera/train/saved_estimator.h"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "estimator_data.h"
#include "tessera/core/error.h"

namespace tessera::train {
namespace {

DataLayout read_layout(const Checkpoint& checkpoint) {
  DataLayout layout;
  try {
    const nlohmann::json meta = nlohmann::json::parse(checkpoint.section("meta"));
    layout.sample_shape = meta.at("sample_shape").get<Shape>();
    layout.class_labels = meta.at("class_labels").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("checkpoint " + checkpoint.path + ": bad meta section: " + e.what());
  }
  return layout;
}

}  // namespace

Checkpoint estimator_checkpoint(const Config& config, const DataLayout& layout,
                                const EstimatorModel& model, int64_t iterations) {
  Checkpoint c;
  c.step = iterations;
  c.sections["config"] = to_toml(config);
  c.sections["meta"] =
      nlohmann::json{{"sample_shape", layout.sample_shape}, {"class_labels", layout.class_labels}}
          .dump();
  std::ostringstream bytes;
  BinaryWriter w(bytes);
  model.write(w);
  c.sections["estimator"] = bytes.str();
  return c;
}

bool holds_estimator(const Checkpoint& checkpoint) {
  return checkpoint.sections.count("estimator") != 0;
}

SavedEstimator load_saved_estimator(const Checkpoint& checkpoint) {
  SavedEstimator saved;
  saved.config = parse_config(checkpoint.section("config"), checkpoint.path + " [config]");
  const std::string where = "checkpoint " + checkpoint.path;
  if (!is_estimator(saved.config.model.type)) {
    throw FormatError(where + ": [model] type \"" + saved.config.model.type +
                      "\" is no estimator, yet the checkpoint holds one");
  }
  saved.layout = read_layout(checkpoint);
  std::istringstream in(checkpoint.section("estimator"));
  BinaryReader r(in, where + " [estimator]");
  saved.model = read_estimator_model(saved.config.model, r);
  const EstimatorModel& m = *saved.model;
  const Shape& shape = saved.layout.sample_shape;
  const bool positive = std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d > 0; });
  if (shape.empty() || shape.size() > 8 || !positive || shape_numel(shape) != m.features()) {
    throw FormatError(detail::concat(where, ": samples of shape ", shape_str(shape),
                                     " for a model of ", m.features(), " features"));
  }
  const auto labels = static_cast<int64_t>(saved.layout.class_labels.size());
  if (labels != 0 && labels != m.classes()) {
    throw FormatError(
        detail::concat(where, ": ", labels, " class labels for ", m.classes(), " classes"));
  }
  return saved;
}

Scores evaluate_estimator(const SavedEstimator& saved, const std::string& spec) {
  const EstimatorTable table = open_estimator_table(spec, saved.config, "--data", &saved.layout);
  auto rows = table_rows(table, nullptr);
  check_feature_count(*rows, spec, saved.model->features(), "the model", "command line", "--data");
  return saved.model->score(*rows, nullptr);
}

}  // namespace tessera::train
