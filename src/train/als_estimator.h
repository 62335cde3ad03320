#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "tessera/train/estimator_model.h"

namespace tessera::train {

// ALS ([model] type "als") as train, eval and predict see it: a row is a user id and an item id,
// its prediction the rating (NaN for a user or an item training never saw). Its scores are the
// RMSE (explicit feedback) or the precision at top_k (implicit).
[[nodiscard]] EstimatorFit fit_als_estimator(const ModelConfig& model, uint64_t seed,
                                             estimators::RowSource& rows, comm::ProcessGroup* group,
                                             std::function<void(int64_t, double)> on_iteration);
[[nodiscard]] std::unique_ptr<EstimatorModel> read_als_estimator(const ModelConfig& model,
                                                                 BinaryReader& in);

}  // namespace tessera::train
