#include "tessera/train/saved_model.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/core/error.h"
#include "tessera/train/model_builder.h"

namespace tessera::train {

SavedModel load_saved_model(const Checkpoint& checkpoint, uint64_t memory_limit) {
  SavedModel saved;
  saved.config = parse_config(checkpoint.section("config"), checkpoint.path + " [config]");
  try {
    const nlohmann::json meta = nlohmann::json::parse(checkpoint.section("meta"));
    saved.sample_shape = meta.at("sample_shape").get<Shape>();
    if (meta.contains("class_labels")) {
      saved.class_labels = meta.at("class_labels").get<std::vector<int64_t>>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("checkpoint " + checkpoint.path + ": bad meta section: " + e.what());
  }
  if (saved.sample_shape.empty() || saved.sample_shape.size() > 8) {
    throw FormatError(detail::concat("checkpoint ", checkpoint.path, ": meta: sample shape ",
                                     shape_str(saved.sample_shape), " is not a sample's shape"));
  }
  for (int64_t d : saved.sample_shape) {
    if (d < 1) {
      throw FormatError(detail::concat("checkpoint ", checkpoint.path, ": meta: sample shape ",
                                       shape_str(saved.sample_shape), " has a dimension below 1"));
    }
  }
  // A language model reads a text window less its last token (the last target).
  saved.next_token = saved.config.train.loss == "next_token";
  Shape input = saved.sample_shape;
  if (saved.next_token) {
    if (input.size() != 1 || input[0] < 2) {
      throw FormatError(detail::concat("checkpoint ", checkpoint.path, ": meta: sample shape ",
                                       shape_str(saved.sample_shape),
                                       " is not a text window of two tokens or more"));
    }
    input[0] -= 1;
  }
  // Weights come from the checkpoint; a saved model is for evaluation, where dropout is off.
  Generator gen(0);
  Shape out;
  saved.model = build_model(saved.config, input, gen, *saved.dropout_rng, &out, {}, memory_limit);
  if (out.size() != (saved.next_token ? 2u : 1u)) {
    throw FormatError(detail::concat("checkpoint ", checkpoint.path, ": the model gives ",
                                     shape_str(out), " per sample, not one score per class",
                                     saved.next_token ? " at each position" : ""));
  }
  saved.classes = out.back();
  std::istringstream in(checkpoint.section("model"));
  BinaryReader r(in, "checkpoint " + checkpoint.path + " [model]");
  saved.model->load_state(r);
  saved.model->eval();
  return saved;
}

}  // namespace tessera::train
