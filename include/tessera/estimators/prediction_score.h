#pragma once

#include <cstdint>
#include <vector>

namespace tessera::estimators {

// A model's quality on some rows: accuracy and mean log loss for a classifier, RMSE and R^2 for a
// regression (the fields the model has no use for stay as computed from zero sums).
struct PredictionScore {
  int64_t rows = 0;
  double accuracy = 0.0;
  double log_loss = 0.0;
  double rmse = 0.0;
  double r2 = 0.0;
};

// The score from sums over the rows (already summed over the processes): [rows, rows predicted
// right, log loss, squared error, target, target squared].
[[nodiscard]] PredictionScore prediction_score(const std::vector<double>& sums);

}  // namespace tessera::estimators
