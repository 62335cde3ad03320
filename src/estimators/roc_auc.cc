#include "tessera/estimators/roc_auc.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "collective.h"

namespace tessera::estimators {

void AucHistogram::add(double probability, bool positive) {
  const double p = std::clamp(std::isnan(probability) ? 0.0 : probability, 0.0, 1.0);
  const auto bin = std::min(kBins - 1, static_cast<int64_t>(p * static_cast<double>(kBins)));
  counts_[static_cast<size_t>((positive ? kBins : 0) + bin)] += 1.0;
}

void AucHistogram::add(const AucHistogram& other) {
  for (size_t e = 0; e < counts_.size(); ++e) counts_[e] += other.counts_[e];
}

void AucHistogram::sum_over(comm::ProcessGroup* group) { estimators::sum_over(group, counts_); }

double AucHistogram::auc() const {
  double negatives_below = 0.0;
  double area = 0.0;
  double positives = 0.0;
  for (int64_t b = 0; b < kBins; ++b) {
    const double neg = counts_[static_cast<size_t>(b)];
    const double pos = counts_[static_cast<size_t>(kBins + b)];
    area += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    positives += pos;
  }
  if (positives == 0 || negatives_below == 0) return std::numeric_limits<double>::quiet_NaN();
  return area / (positives * negatives_below);
}

}  // namespace tessera::estimators
