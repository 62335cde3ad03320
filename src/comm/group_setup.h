#pragma once

// What every backend's factory and split() share (internal to comm).
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/comm/store.h"
#include "tessera/core/error.h"

namespace tessera::comm {

// Throws ValueError naming `factory` when the store is null, rank is outside [0, size), the name
// is empty or the timeout is not positive.
inline void check_group_args(const char* factory, const Store* store, int rank, int size,
                             const GroupOptions& options) {
  if (store == nullptr) throw ValueError(detail::concat(factory, ": null store"));
  if (size < 1 || rank < 0 || rank >= size) {
    throw ValueError(detail::concat(factory, ": rank ", rank, " is not in [0, ", size, ")"));
  }
  if (options.name.empty()) throw ValueError(detail::concat(factory, ": empty group name"));
  if (options.timeout.count() <= 0) {
    throw ValueError(
        detail::concat(factory, ": timeout ", options.timeout.count(), " ms must be positive"));
  }
}

// "rank 3" or "ranks 1, 4": for error messages.
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
}

struct SplitPlace {
  int rank = 0;
  int size = 0;
};

// This rank's place in the sub-group of `color`, from every rank's (color, key) pair laid out as
// exchange[2r], exchange[2r+1]: members ordered by (key, rank here), MPI_Comm_split's rule.
inline SplitPlace split_place(const std::vector<std::int64_t>& exchange, int color, int my_rank) {
  std::vector<std::pair<std::int64_t, int>> members;
  for (std::size_t i = 0; 2 * i + 1 < exchange.size(); ++i) {
    if (exchange[2 * i] == color) members.emplace_back(exchange[2 * i + 1], static_cast<int>(i));
  }
  std::sort(members.begin(), members.end());
  int child = 0;
  while (members[static_cast<std::size_t>(child)].second != my_rank) ++child;
  return {child, static_cast<int>(members.size())};
}

}  // namespace tessera::comm
