#include "feature_bins.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "collective.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/core/thread_pool.h"

namespace tessera::estimators {
namespace {

// Distinct values a feature may have and still get bins from all of them.
constexpr size_t kExactValues = 1024;
// Values sampled over all the features with more distinct values, and rows sampled at most.
constexpr int64_t kSampleValues = int64_t{1} << 21;
constexpr int64_t kMaxSampleRows = int64_t{1} << 16;
constexpr int64_t kMinSampleRows = int64_t{1} << 12;
// Features a row pass visits together: their tables stay in cache.
constexpr int64_t kFeatureTile = 32;
constexpr uint64_t kSampleStream = 1;
constexpr uint64_t kHeldOutStream = 2;

// A feature's distinct values and their counts, until it has more than kExactValues.
class DistinctValues {
 public:
  void add(float value, int64_t count = 1) {
    if (overflowed_) return;
    if (2 * (size_ + 1) > keys_.size()) grow();
    if (overflowed_) return;
    const uint32_t key = std::bit_cast<uint32_t>(value == 0.0F ? 0.0F : value);  // -0 is 0
    const size_t mask = keys_.size() - 1;
    for (size_t i = (key * 0x9E3779B1U) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        counts_[i] = count;
        ++size_;
        return;
      }
      if (keys_[i] == key) {
        counts_[i] += count;
        return;
      }
    }
  }

  void add(const DistinctValues& other) {
    if (other.overflowed_) overflow();
    for (size_t i = 0; i < other.keys_.size() && !overflowed_; ++i) {
      if (other.keys_[i] != kEmpty) add(std::bit_cast<float>(other.keys_[i]), other.counts_[i]);
    }
  }

  [[nodiscard]] bool overflowed() const { return overflowed_; }

  // Its values in increasing order, each followed by its count.
  void append_sorted(std::vector<double>& out) const {
    std::vector<std::pair<float, int64_t>> pairs;
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != kEmpty) pairs.emplace_back(std::bit_cast<float>(keys_[i]), counts_[i]);
    }
    std::sort(pairs.begin(), pairs.end());
    out.push_back(static_cast<double>(pairs.size()));
    for (const auto& [v, c] : pairs) {
      out.push_back(v);
      out.push_back(static_cast<double>(c));
    }
  }

 private:
  static constexpr uint32_t kEmpty = 0xffffffffU;  // a NaN's bits: never a key

  void overflow() {
    overflowed_ = true;
    keys_ = {};
    counts_ = {};
  }

  void grow() {
    if (size_ >= kExactValues) return overflow();
    std::vector<uint32_t> keys = std::move(keys_);
    std::vector<int64_t> counts = std::move(counts_);
    keys_.assign(std::max<size_t>(16, 2 * keys.size()), kEmpty);
    counts_.assign(keys_.size(), 0);
    size_ = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] != kEmpty) add(std::bit_cast<float>(keys[i]), counts[i]);
    }
  }

  std::vector<uint32_t> keys_;
  std::vector<int64_t> counts_;
  size_t size_ = 0;
  bool overflowed_ = false;
};

// Values and counts from (value, count) pairs in any order: increasing values, equal ones added.
void merge_pairs(std::vector<std::pair<double, double>>& pairs, std::vector<double>& values,
                 std::vector<double>& counts) {
  std::sort(pairs.begin(), pairs.end());
  values.clear();
  counts.clear();
  for (const auto& [v, c] : pairs) {
    if (!values.empty() && values.back() == v) {
      counts.back() += c;
    } else {
      values.push_back(v);
      counts.push_back(c);
    }
  }
}

// Each feature's distinct values on this process (overflowed past kExactValues).
std::vector<DistinctValues> count_distinct(RowSource& rows) {
  const int64_t d = rows.num_features();
  std::vector<std::vector<DistinctValues>> parts(static_cast<size_t>(rows.parts()));
  for (auto& p : parts) p.resize(static_cast<size_t>(d));
  rows.for_each_block_in_parts([&](const RowBlock& b, int part) {
    std::vector<DistinctValues>& seen = parts[static_cast<size_t>(part)];
    const float* x = b.x.data<float>();
    for (int64_t tile = 0; tile < d; tile += kFeatureTile) {
      const int64_t end = std::min(d, tile + kFeatureTile);
      for (int64_t r = 0; r < b.rows(); ++r) {
        for (int64_t f = tile; f < end; ++f) {
          const float v = x[r * d + f];
          if (!std::isnan(v)) seen[static_cast<size_t>(f)].add(v);
        }
      }
    }
  });
  for (size_t p = 1; p < parts.size(); ++p) {
    for (int64_t f = 0; f < d; ++f)
      parts[0][static_cast<size_t>(f)].add(parts[p][static_cast<size_t>(f)]);
  }
  return std::move(parts[0]);
}

// Every process's values of `features` from the rows the keyed draw picks, each feature's sorted.
// Floats all the way: the sample is the largest thing the bins need.
std::vector<std::vector<float>> sample_values(RowSource& rows, comm::ProcessGroup* group,
                                              const std::vector<int64_t>& features, uint64_t seed) {
  const auto n = static_cast<double>(count_rows(rows, group));
  const int64_t wanted = std::clamp<int64_t>(kSampleValues / static_cast<int64_t>(features.size()),
                                             kMinSampleRows, kMaxSampleRows);
  const double rate = std::min(1.0, static_cast<double>(wanted) / n);
  const int64_t d = rows.num_features();
  const size_t k = features.size();
  std::vector<std::vector<std::vector<float>>> parts(static_cast<size_t>(rows.parts()));
  for (auto& p : parts) p.resize(k);
  rows.for_each_block_in_parts([&](const RowBlock& b, int part) {
    auto& picked = parts[static_cast<size_t>(part)];
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      if (keyed_uniform(seed, kSampleStream, static_cast<uint64_t>(b.first + r)) >= rate) continue;
      for (size_t j = 0; j < k; ++j) {
        const float v = x[r * d + features[j]];
        if (!std::isnan(v)) picked[j].push_back(v);
      }
    }
  });
  std::vector<float> mine;  // per feature: its count, then its values
  for (size_t j = 0; j < k; ++j) {
    size_t count = 0;
    for (const auto& p : parts) count += p[j].size();
    mine.push_back(static_cast<float>(count));  // a count below 2^24: kMaxSampleRows
    for (auto& p : parts) {
      mine.insert(mine.end(), p[j].begin(), p[j].end());
      p[j] = {};
    }
  }
  parts.clear();
  std::vector<float> all = gather_rows(group, mine);
  mine = {};
  std::vector<std::vector<float>> values(k);
  for (size_t at = 0; at < all.size();) {  // one process's records after another
    for (size_t j = 0; j < k; ++j) {
      const auto count = static_cast<size_t>(all[at++]);
      values[j].insert(values[j].end(), all.begin() + static_cast<std::ptrdiff_t>(at),
                       all.begin() + static_cast<std::ptrdiff_t>(at + count));
      at += count;
    }
  }
  all = {};
  parallel_for(static_cast<int64_t>(k), 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      std::sort(values[static_cast<size_t>(j)].begin(), values[static_cast<size_t>(j)].end());
    }
  });
  return values;
}

// Sorted values as distinct values and their counts.
void count_sorted(const std::vector<float>& sorted, std::vector<double>& values,
                  std::vector<double>& counts) {
  values.clear();
  counts.clear();
  for (float v : sorted) {
    if (!values.empty() && values.back() == v) {
      counts.back() += 1;
    } else {
      values.push_back(v);
      counts.push_back(1);
    }
  }
}

}  // namespace

uint8_t FeatureBins::bin(int64_t f, float value) const {
  if (std::isnan(value)) return 0;
  const std::vector<float>& u = upper[static_cast<size_t>(f)];
  // std::upper_bound without branches: a row's values are not predictable, its steps are.
  const float* at = u.data();
  for (size_t n = u.size(); n > 1; n -= n / 2) at = at[n / 2] <= value ? at + n / 2 : at;
  const auto below = (at - u.data()) + (*at <= value ? 1 : 0);
  return static_cast<uint8_t>(
      1 + std::min<std::ptrdiff_t>(below, static_cast<std::ptrdiff_t>(u.size()) - 1));
}

std::vector<float> cuts_from(const std::vector<double>& values, const std::vector<double>& counts,
                             int64_t max_bins) {
  std::vector<float> upper;
  const size_t m = values.size();
  if (m <= static_cast<size_t>(max_bins)) {
    for (size_t i = 1; i < m; ++i) upper.push_back(static_cast<float>(values[i]));
  } else {
    double total = 0.0;
    for (double c : counts) total += c;
    double cumulative = 0.0;
    int64_t next = 1;  // the next quantile, next / max_bins of the weight
    for (size_t i = 0; i + 1 < m && static_cast<int64_t>(upper.size()) < max_bins - 1; ++i) {
      cumulative += counts[i];
      if (cumulative < static_cast<double>(next) * total / static_cast<double>(max_bins)) continue;
      upper.push_back(static_cast<float>(values[i + 1]));
      while (static_cast<double>(next) * total / static_cast<double>(max_bins) <= cumulative)
        ++next;
    }
  }
  upper.push_back(std::numeric_limits<float>::infinity());
  return upper;
}

FeatureBins find_feature_bins(RowSource& rows, comm::ProcessGroup* group, int64_t max_bins,
                              uint64_t seed) {
  if (max_bins < 2 || max_bins > 255) {
    throw ValueError(detail::concat("boosted trees: max_bins ", max_bins, " is not in [2, 255]"));
  }
  const int64_t d = rows.num_features();
  std::vector<DistinctValues> distinct = count_distinct(rows);
  std::vector<double> overflowed(static_cast<size_t>(d));
  for (int64_t f = 0; f < d; ++f)
    overflowed[static_cast<size_t>(f)] = distinct[static_cast<size_t>(f)].overflowed();
  sum_over(group, overflowed, comm::ReduceOp::kMax);
  std::vector<int64_t> exact;
  std::vector<int64_t> sampled;
  std::vector<double> mine;
  for (int64_t f = 0; f < d; ++f) {
    if (overflowed[static_cast<size_t>(f)] != 0) {
      sampled.push_back(f);
      continue;
    }
    exact.push_back(f);
    distinct[static_cast<size_t>(f)].append_sorted(mine);
  }
  distinct.clear();
  std::vector<std::vector<std::pair<double, double>>> pairs(static_cast<size_t>(d));
  const std::vector<double> all = gather_values(group, mine);
  for (size_t at = 0; at < all.size();) {  // one process's records after another
    for (int64_t f : exact) {
      const auto count = static_cast<size_t>(all[at++]);
      for (size_t i = 0; i < count; ++i, at += 2) {
        pairs[static_cast<size_t>(f)].emplace_back(all[at], all[at + 1]);
      }
    }
  }
  std::vector<std::vector<float>> sample(static_cast<size_t>(d));
  if (!sampled.empty()) {
    auto values = sample_values(rows, group, sampled, seed);
    for (size_t j = 0; j < sampled.size(); ++j)
      sample[static_cast<size_t>(sampled[j])] = std::move(values[j]);
  }
  FeatureBins bins;
  bins.upper.resize(static_cast<size_t>(d));
  parallel_for(d, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> values;
    std::vector<double> counts;
    for (int64_t f = begin; f < end; ++f) {
      if (overflowed[static_cast<size_t>(f)] != 0) {
        count_sorted(sample[static_cast<size_t>(f)], values, counts);
      } else {
        merge_pairs(pairs[static_cast<size_t>(f)], values, counts);
      }
      bins.upper[static_cast<size_t>(f)] = cuts_from(values, counts, max_bins);
    }
  });
  bins.offset.push_back(0);
  for (const std::vector<float>& u : bins.upper) {
    bins.offset.push_back(bins.offset.back() + 1 + static_cast<int32_t>(u.size()));
  }
  return bins;
}

void bin_rows(RowSource& rows, const FeatureBins& bins, double held_out_fraction, uint64_t seed,
              BinnedRows& train, BinnedRows& held_out) {
  const int64_t n = rows.num_rows();
  const int64_t first = rows.first_row();
  const int64_t d = rows.num_features();
  // Each row's place in its set.
  std::vector<int64_t> place(static_cast<size_t>(n));
  std::vector<uint8_t> held(static_cast<size_t>(n));
  int64_t counts[2] = {0, 0};
  for (int64_t i = 0; i < n; ++i) {
    const bool out =
        held_out_fraction > 0 &&
        keyed_uniform(seed, kHeldOutStream, static_cast<uint64_t>(first + i)) < held_out_fraction;
    held[static_cast<size_t>(i)] = out ? 1 : 0;
    place[static_cast<size_t>(i)] = counts[out ? 1 : 0]++;
  }
  BinnedRows* sets[2] = {&train, &held_out};
  for (int s = 0; s < 2; ++s) {
    sets[s]->features = d;
    sets[s]->bins.assign(static_cast<size_t>(counts[s] * d), 0);
    sets[s]->y.assign(static_cast<size_t>(counts[s]), 0.0);
    sets[s]->index.assign(static_cast<size_t>(counts[s]), 0);
  }
  rows.for_each_block_in_parts([&](const RowBlock& b, int /*part*/) {
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      const auto local = static_cast<size_t>(b.first + r - first);
      BinnedRows& to = *sets[held[local]];
      const auto at = static_cast<size_t>(place[local]);
      uint8_t* out = to.bins.data() + at * static_cast<size_t>(d);
      for (int64_t f = 0; f < d; ++f) out[f] = bins.bin(f, x[r * d + f]);
      to.y[at] = b.y[static_cast<size_t>(r)];
      to.index[at] = b.first + r;
    }
  });
}

}  // namespace tessera::estimators
