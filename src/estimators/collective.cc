#include "collective.h"

#include <algorithm>
#include <vector>

#include "tessera/core/error.h"

namespace tessera::estimators {

void sum_over(comm::ProcessGroup* group, std::span<double> values, comm::ReduceOp op) {
  if (group != nullptr && group->size() > 1) group->allreduce(values, op)->wait();
}

void sum_over(comm::ProcessGroup* group, std::span<float> values) {
  if (group != nullptr && group->size() > 1) {
    group->allreduce(values, comm::ReduceOp::kSum)->wait();
  }
}

namespace {

template <typename T>
std::vector<T> gather(comm::ProcessGroup* group, const std::vector<T>& rows) {
  if (group == nullptr || group->size() == 1) return rows;
  std::vector<double> counts(static_cast<size_t>(group->size()), 0.0);
  counts[static_cast<size_t>(group->rank())] = static_cast<double>(rows.size());
  sum_over(group, counts);
  size_t at = 0;
  size_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    if (static_cast<int>(r) < group->rank()) at += static_cast<size_t>(counts[r]);
    total += static_cast<size_t>(counts[r]);
  }
  // Each process fills its own stretch; the sum of zeros and one value is that value.
  std::vector<T> all(total, T{0});
  std::copy(rows.begin(), rows.end(), all.begin() + static_cast<std::ptrdiff_t>(at));
  sum_over(group, all);
  return all;
}

}  // namespace

std::vector<float> gather_rows(comm::ProcessGroup* group, const std::vector<float>& rows) {
  return gather(group, rows);
}

std::vector<double> gather_values(comm::ProcessGroup* group, const std::vector<double>& values) {
  return gather(group, values);
}

int64_t count_rows(const RowSource& rows, comm::ProcessGroup* group) {
  std::vector<double> n{static_cast<double>(rows.num_rows())};
  sum_over(group, n);
  return static_cast<int64_t>(n[0]);
}

void check_every_process_has_rows(const RowSource& rows, comm::ProcessGroup* group,
                                  const std::string& what) {
  if (group == nullptr || group->size() == 1) return;
  std::vector<double> counts(static_cast<size_t>(group->size()), 0.0);
  counts[static_cast<size_t>(group->rank())] = static_cast<double>(rows.num_rows());
  sum_over(group, counts);
  for (size_t r = 0; r < counts.size(); ++r) {
    if (counts[r] == 0) {
      throw ValueError(detail::concat(what, ": rank ", r, " of ", counts.size(),
                                      " holds no rows: the data set has fewer rows than there ",
                                      "are processes"));
    }
  }
}

}  // namespace tessera::estimators
