#include "tessera/estimators/prediction_score.h"

#include <cmath>

namespace tessera::estimators {

PredictionScore prediction_score(const std::vector<double>& sums) {
  PredictionScore s;
  s.rows = static_cast<int64_t>(sums[0]);
  if (s.rows == 0) return s;
  const double n = sums[0];
  s.accuracy = sums[1] / n;
  s.log_loss = sums[2] / n;
  s.rmse = std::sqrt(sums[3] / n);
  const double variance = sums[5] / n - (sums[4] / n) * (sums[4] / n);
  s.r2 = variance > 0 ? 1.0 - (sums[3] / n) / variance : 0.0;
  return s;
}

}  // namespace tessera::estimators
