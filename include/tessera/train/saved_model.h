#pragma once

#include <memory>

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
  int64_t classes = 0;
};

// Rebuilds the model from the checkpoint's config and loads its weights; throws FormatError
// naming the checkpoint when a section is missing or does not fit.
[[nodiscard]] SavedModel load_saved_model(const Checkpoint& checkpoint);

}  // namespace tessera::train
