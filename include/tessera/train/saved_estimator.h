#pragma once

#include <cstdint>
#include <string>

#include "tessera/estimators/linear_model.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/config.h"
#include "tessera/train/data_source.h"

namespace tessera::train {

// A fitted estimator as `tessera train` saves it (<run_dir>/model.ckpt): the checkpoint sections
// "config" (the run's config), "meta" (the training set's sample shape and class labels) and
// "estimator" (the model's bytes).
struct SavedEstimator {
  Config config;
  DataLayout layout;  // what data must look like to feed the model
  estimators::LinearModel linear;
};

// The checkpoint of a fit after `iterations` (its step).
[[nodiscard]] Checkpoint estimator_checkpoint(const SavedEstimator& saved, int64_t iterations);
// Whether a checkpoint holds an estimator (else a network's weights).
[[nodiscard]] bool holds_estimator(const Checkpoint& checkpoint);
// Throws FormatError naming the checkpoint when a section is missing, malformed or disagrees with
// another (the config's model type with the model's loss, the sample shape with its features).
[[nodiscard]] SavedEstimator load_saved_estimator(const Checkpoint& checkpoint);
// The model's scores on the labelled data set `spec` names (one process). Throws ConfigError
// naming --data for data the model cannot take.
[[nodiscard]] estimators::LinearScore evaluate_estimator(const SavedEstimator& saved,
                                                         const std::string& spec);

}  // namespace tessera::train
