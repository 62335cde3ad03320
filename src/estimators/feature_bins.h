#pragma once

#include <cstdint>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/estimators/row_source.h"

namespace tessera::estimators {

// Each feature's values cut into bins once, for trees grown on histograms. Bin 0 of every feature
// holds missing values (NaN); value bin j >= 1 holds the values in [upper[j - 2], upper[j - 1]), so
// a value's bin is at most b exactly when it is below upper[b - 1].
struct FeatureBins {
  std::vector<std::vector<float>> upper;  // per feature, increasing; the last is +infinity
  std::vector<int32_t> offset;            // per feature, its bin 0 in a histogram; then the total

  [[nodiscard]] int64_t features() const { return static_cast<int64_t>(upper.size()); }
  [[nodiscard]] int32_t total() const { return offset.back(); }
  [[nodiscard]] int32_t bins(int64_t f) const {  // the missing bin included
    return offset[static_cast<size_t>(f + 1)] - offset[static_cast<size_t>(f)];
  }
  [[nodiscard]] uint8_t bin(int64_t f, float value) const;
};

// The upper bounds of at most max_bins bins of about equal weight from a feature's distinct
// values (increasing) and their counts: every value its own bin when there are few enough.
[[nodiscard]] std::vector<float> cuts_from(const std::vector<double>& values,
                                           const std::vector<double>& counts, int64_t max_bins);

// Two passes at most over every process's rows: each feature's distinct values and their counts
// (summed over the processes, exact) while it has few; for the features with more, the values of
// the rows a draw keyed by (seed, row index) picks. Either way the rows' split over processes does
// not change the bins. max_bins lies in [2, 255].
[[nodiscard]] FeatureBins find_feature_bins(RowSource& rows, comm::ProcessGroup* group,
                                            int64_t max_bins, uint64_t seed);

// A process's rows quantised, a byte per value, row-major, with their targets.
struct BinnedRows {
  int64_t features = 0;
  std::vector<uint8_t> bins;
  std::vector<double> y;
  std::vector<int64_t> index;  // each row's index in the whole table, for errors
  [[nodiscard]] int64_t rows() const { return static_cast<int64_t>(y.size()); }
  [[nodiscard]] const uint8_t* row(int64_t r) const {
    return bins.data() + static_cast<size_t>(r * features);
  }
};

// One pass quantising this process's rows: a row goes to `held_out` when the draw keyed by
// (seed, its row index) falls below held_out_fraction, else to `train`.
void bin_rows(RowSource& rows, const FeatureBins& bins, double held_out_fraction, uint64_t seed,
              BinnedRows& train, BinnedRows& held_out);

}  // namespace tessera::estimators
