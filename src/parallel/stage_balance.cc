#include "tessera/parallel/stage_balance.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "tessera/core/error.h"

namespace tessera::parallel {

std::vector<size_t> balance_stages(std::span<const double> costs, int stages) {
  const size_t n = costs.size();
  if (stages < 1 || n < static_cast<size_t>(stages)) {
    throw Error(detail::concat("cannot cut ", n, " layers into ", stages,
                               " pipeline stages: every stage needs a layer"));
  }
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(costs[i]) || costs[i] < 0) {
      throw Error(detail::concat("layer ", i, " has cost ", costs[i], "; costs must be >= 0"));
    }
    prefix[i + 1] = prefix[i] + costs[i];
  }
  const auto k = static_cast<size_t>(stages);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[s][i]: the least possible largest cost of the first i layers in s stages; cut[s][i] where
  // the last of those stages starts.
  std::vector<std::vector<double>> best(k + 1, std::vector<double>(n + 1, kInf));
  std::vector<std::vector<size_t>> cut(k + 1, std::vector<size_t>(n + 1, 0));
  best[0][0] = 0.0;
  for (size_t s = 1; s <= k; ++s) {
    for (size_t i = s; i <= n - (k - s); ++i) {
      for (size_t j = s - 1; j < i; ++j) {
        const double worst = std::max(best[s - 1][j], prefix[i] - prefix[j]);
        if (worst < best[s][i]) {
          best[s][i] = worst;
          cut[s][i] = j;
        }
      }
    }
  }
  std::vector<size_t> bounds(k + 1, n);
  for (size_t s = k; s > 0; --s) bounds[s - 1] = cut[s][bounds[s]];
  return bounds;
}

std::vector<size_t> stage_boundaries(size_t layers, std::span<const int64_t> cuts) {
  std::vector<size_t> bounds{0};
  for (size_t i = 0; i < cuts.size(); ++i) {
    const int64_t c = cuts[i];
    if (c <= static_cast<int64_t>(bounds.back()) || c >= static_cast<int64_t>(layers)) {
      throw Error(detail::concat("cut ", i, " (before layer ", c, ") must lie in [",
                                 bounds.back() + 1, ", ", layers - 1,
                                 "]: cuts ascend and every stage keeps a layer"));
    }
    bounds.push_back(static_cast<size_t>(c));
  }
  bounds.push_back(layers);
  return bounds;
}

}  // namespace tessera::parallel
