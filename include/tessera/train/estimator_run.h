#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/train/config.h"
#include "tessera/train/estimator_model.h"

namespace tessera::train {

struct EstimatorRunOptions {
  comm::ProcessGroup* group = nullptr;  // nullptr: one process
  std::FILE* progress = nullptr;        // rank 0's progress lines; nullptr: none
};

struct EstimatorResult {
  std::string model;  // [model] type
  int64_t rows = 0;   // training rows over every process
  int64_t iterations = 0;
  double objective = 0.0;
  bool converged = false;
  std::string stop;           // why the solver stopped
  double wall_seconds = 0.0;  // from the start, data loading included
  double fit_seconds = 0.0;   // fitting alone
  Scores train;
  Scores test;           // empty: no test data
  std::string saved_to;  // rank 0: where the model was saved
};

// Fits the estimator that [model] names on data.train, every process of `group` holding its share
// of the rows (rows [r N / P, (r + 1) N / P) of P processes), scores it on data.train and
// data.test, writes each iteration's objective and the scores to <run_dir>/metrics.jsonl and
// saves the model to <run_dir>/model.ckpt (rank 0: saved_estimator.h). Every process returns the
// same result but for saved_to. Throws ConfigError for a data set the model
// cannot read, FormatError naming the row for a bad label.
[[nodiscard]] EstimatorResult run_estimator(const Config& config,
                                            const EstimatorRunOptions& options);

}  // namespace tessera::train
