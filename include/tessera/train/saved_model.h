#pragma once

#include <memory>
#include <vector>

#include "tessera/nn/sequential.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/config.h"

namespace tessera::train {

// A model rebuilt from a checkpoint the Trainer wrote: its config, architecture and weights.
struct SavedModel {
  Config config;
  std::unique_ptr<Generator> dropout_rng = std::make_unique<Generator>(0);
  std::shared_ptr<nn::Sequential> model;
  Shape sample_shape;
  int64_t classes = 0;                // the model's outputs per sample (per position: text)
  bool next_token = false;            // a language model: scores every position's next token
  std::vector<int64_t> class_labels;  // the training file's label of each class (may be empty)
};

// Rebuilds the model from the checkpoint's config and loads its weights; throws FormatError
// naming the checkpoint when a section is missing or does not fit. The class count is the
// model's own output size; the meta section only supplies the sample shape and class labels.
// `memory_limit` bounds the model as build_model's does (0: this machine's memory).
[[nodiscard]] SavedModel load_saved_model(const Checkpoint& checkpoint, uint64_t memory_limit = 0);

}  // namespace tessera::train
