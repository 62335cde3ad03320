#pragma once

#include <cstdint>
#include <vector>

#include "tessera/comm/process_group.h"

namespace tessera::estimators {

// The area under the ROC curve of a binary classifier, from a histogram of its positive-class
// probabilities: each process adds its rows, one allreduce combines the counts, so the area is
// the same on any number of processes and needs memory for the bins, not the rows. Rows whose
// probabilities share a bin count as ties (half), which moves the area by at most the share of
// positive-negative pairs within one bin of each other: below 1e-4 for probabilities spread over
// [0, 1].
class AucHistogram {
 public:
  static constexpr int64_t kBins = int64_t{1} << 16;

  AucHistogram() : counts_(2 * kBins, 0.0) {}
  void add(double probability, bool positive);
  void add(const AucHistogram& other);
  // Sums the counts over `group` (nullptr: one process).
  void sum_over(comm::ProcessGroup* group);
  // NaN when either class is absent.
  [[nodiscard]] double auc() const;

 private:
  std::vector<double> counts_;  // [negatives per bin, positives per bin]
};

}  // namespace tessera::estimators
