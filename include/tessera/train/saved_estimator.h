#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tessera/train/checkpoint.h"
#include "tessera/train/config.h"
#include "tessera/train/data_source.h"
#include "tessera/train/estimator_model.h"

namespace tessera::train {

// A fitted estimator as `tessera train` saves it (<run_dir>/model.ckpt): the checkpoint sections
// "config" (the run's config), "meta" (the training set's sample shape and class labels) and
// "estimator" (the model's bytes).
struct SavedEstimator {
  Config config;
  DataLayout layout;  // what data must look like to feed the model
  std::unique_ptr<EstimatorModel> model;
};

// The checkpoint of a fit after `iterations` (its step).
[[nodiscard]] Checkpoint estimator_checkpoint(const Config& config, const DataLayout& layout,
                                              const EstimatorModel& model, int64_t iterations);
// Whether a checkpoint holds an estimator (else a network's weights).
[[nodiscard]] bool holds_estimator(const Checkpoint& checkpoint);
// Throws FormatError naming the checkpoint when a section is missing, malformed or disagrees with
// another (the config's model type with the model, the sample shape with its features).
[[nodiscard]] SavedEstimator load_saved_estimator(const Checkpoint& checkpoint);
// The model's scores on the labelled data set `spec` names (one process). Throws ConfigError
// naming --data for data the model cannot take.
[[nodiscard]] Scores evaluate_estimator(const SavedEstimator& saved, const std::string& spec);

}  // namespace tessera::train
