#include "tessera/train/saved_model.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/core/error.h"
#include "tessera/train/model_builder.h"

namespace tessera::train {

SavedModel load_saved_model(const Checkpoint& checkpoint) {
  SavedModel saved;
  saved.config = parse_config(checkpoint.section("config"), checkpoint.path + " [config]");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(checkpoint.section("meta"));
    saved.sample_shape = meta.at("sample_shape").get<Shape>();
    saved.classes = meta.at("classes").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("checkpoint " + checkpoint.path + ": bad meta section: " + e.what());
  }
  // Weights come from the checkpoint; a saved model is for evaluation, where dropout is off.
  Generator gen(0);
  saved.model = build_model(saved.config, saved.sample_shape, gen, *saved.dropout_rng);
  std::istringstream in(checkpoint.section("model"));
  BinaryReader r(in, "checkpoint " + checkpoint.path + " [model]");
  saved.model->load_state(r);
  saved.model->eval();
  return saved;
}

}  // namespace tessera::train
