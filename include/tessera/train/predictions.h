#pragma once

#include <cstdint>
#include <string>

#include "tessera/train/checkpoint.h"

namespace tessera::train {

// Writes what a saved model (a network's checkpoint or an estimator's model.ckpt) predicts for
// each sample of the data set `spec` names, to `out_path` as CSV, replacing it whole or not at
// all: the header "prediction" and, for a model that gives class probabilities, one "p_<label>"
// column per class; then one line per sample, in the data set's order. A prediction is the class
// as the training file labelled it, or the value a regression predicts. The data set needs no
// labels: a CSV file without the label column is read as features alone. Returns the samples
// written. Throws ConfigError naming --data for data the model cannot take, ValueError for a
// language model (it predicts every position: `tessera eval` scores it).
int64_t write_predictions(const Checkpoint& checkpoint, const std::string& spec,
                          const std::string& out_path, int64_t batch_size = 256);

}  // namespace tessera::train
