#include "auc.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "tessera/core/error.h"

namespace tessera::train {

double roc_auc(std::span<const float> scores, std::span<const float> labels) {
  TESSERA_CHECK_EQ(scores.size(), labels.size());
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney: the positives' ranks (ties sharing their mean rank) less the least they can be.
  double positive_ranks = 0.0;
  double positives = 0.0;
  for (size_t i = 0; i < order.size();) {
    size_t end = i;
    while (end < order.size() && scores[order[end]] == scores[order[i]]) ++end;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + end);
    for (size_t k = i; k < end; ++k) {
      if (labels[order[k]] > 0.5f) {
        positive_ranks += mean_rank;
        positives += 1.0;
      }
    }
    i = end;
  }
  const double negatives = static_cast<double>(order.size()) - positives;
  if (positives == 0.0 || negatives == 0.0) return std::nan("");
  return (positive_ranks - positives * (positives + 1.0) / 2.0) / (positives * negatives);
}

}  // namespace tessera::train
