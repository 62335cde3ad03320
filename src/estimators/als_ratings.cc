#include "als_ratings.h"

#include <algorithm>
#include <cmath>

#include "collective.h"
#include "tessera/core/error.h"

namespace tessera::estimators {
namespace {

constexpr double kIdLimit = 16777216.0;  // 2^24

int32_t read_id(float v, const char* what, const RowSource& rows, int64_t index) {
  if (!(v >= 0 && v < kIdLimit && v == std::floor(v))) {
    throw FormatError(detail::concat(rows.origin(index), ": the ", what, " id ", v,
                                     " is not an integer in [0, 2^24)"));
  }
  return static_cast<int32_t>(v);
}

}  // namespace

std::vector<Rating> read_ratings(RowSource& rows) {
  if (rows.num_features() != 2) {
    // The file the rows come from ("train.csv:2"), when this process has any.
    const std::string where =
        rows.num_rows() > 0 ? rows.origin(rows.first_row()) : std::string("the data");
    throw ValueError(
        detail::concat("ALS: a rating is two columns, a user id and an item id, and "
                       "the rating (data.label_column); ",
                       where, " has ", rows.num_features(), " columns besides the rating"));
  }
  std::vector<Rating> ratings;
  ratings.reserve(static_cast<size_t>(rows.num_rows()));
  rows.for_each_block([&](const RowBlock& b) {
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double value = b.y[static_cast<size_t>(r)];
      if (!std::isfinite(value)) {
        throw FormatError(
            detail::concat(rows.origin(b.first + r), ": the rating ", value, " is not a number"));
      }
      ratings.push_back({read_id(x[2 * r], "user", rows, b.first + r),
                         read_id(x[2 * r + 1], "item", rows, b.first + r),
                         static_cast<float>(value)});
    }
  });
  return ratings;
}

std::vector<Rating> send_to_owners(comm::ProcessGroup* group, const std::vector<Rating>& ratings,
                                   bool by_user) {
  const int p = group == nullptr ? 1 : group->size();
  if (p == 1) return ratings;
  const auto owner = [&](const Rating& r) { return (by_user ? r.user : r.item) % p; };
  std::vector<int64_t> sent(static_cast<size_t>(p), 0);
  for (const Rating& r : ratings) ++sent[static_cast<size_t>(owner(r))];
  std::vector<int64_t> received(static_cast<size_t>(p), 0);
  group->alltoall(sent.data(), received.data(), 1, comm::DataType::kInt64)->wait();
  // One alltoall of equal blocks, each as long as the longest: hashing ids over the processes
  // keeps the blocks about equal.
  std::vector<double> longest{static_cast<double>(*std::max_element(sent.begin(), sent.end()))};
  sum_over(group, longest, comm::ReduceOp::kMax);
  if (longest[0] == 0) return {};
  const auto block = static_cast<size_t>(longest[0]) * 3;
  std::vector<float> out(block * static_cast<size_t>(p));
  std::vector<size_t> at(static_cast<size_t>(p), 0);
  for (const Rating& r : ratings) {
    const auto o = static_cast<size_t>(owner(r));
    float* slot = out.data() + o * block + 3 * at[o]++;
    slot[0] = static_cast<float>(r.user);
    slot[1] = static_cast<float>(r.item);
    slot[2] = r.value;
  }
  std::vector<float> in(out.size());
  group->alltoall(out.data(), in.data(), block, comm::DataType::kFloat32)->wait();
  std::vector<Rating> mine;
  for (size_t from = 0; from < static_cast<size_t>(p); ++from) {
    const float* slot = in.data() + from * block;
    for (int64_t i = 0; i < received[from]; ++i, slot += 3) {
      mine.push_back({static_cast<int32_t>(slot[0]), static_cast<int32_t>(slot[1]), slot[2]});
    }
  }
  return mine;
}

}  // namespace tessera::estimators
