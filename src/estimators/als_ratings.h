#pragma once

#include <cstdint>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/estimators/row_source.h"

namespace tessera::estimators {

// One rating: ids below 2^24, so that they travel exactly as float32.
struct Rating {
  int32_t user = 0;
  int32_t item = 0;
  float value = 0.0F;
};

// x . y over k factors, summed in double.
[[nodiscard]] inline double factor_dot(const float* x, const float* y, int64_t k) {
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += double{x[i]} * y[i];
  return s;
}

// The ratings of a process's rows (two features, a user id and an item id, and the rating as the
// target). Throws ValueError for another feature count, FormatError naming the row for an id that
// is not an integer in [0, 2^24) or a rating that is not a number.
[[nodiscard]] std::vector<Rating> read_ratings(RowSource& rows);

// Sends each rating to the process that owns its user (by_user) or its item: id mod P. Returns
// what this process received, from every process in rank order.
[[nodiscard]] std::vector<Rating> send_to_owners(comm::ProcessGroup* group,
                                                 const std::vector<Rating>& ratings, bool by_user);

}  // namespace tessera::estimators
