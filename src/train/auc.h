#pragma once

#include <span>

namespace tessera::train {

// Area under the ROC curve of scores against binary labels (1 positive, 0 negative): the chance
// that a random positive scores above a random negative, ties counting half. NaN when either class
// is absent.
[[nodiscard]] double roc_auc(std::span<const float> scores, std::span<const float> labels);

}  // namespace tessera::train
