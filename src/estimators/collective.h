#pragma once

#include <span>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/estimators/row_source.h"

namespace tessera::estimators {

// Reduces `values` across `group` in place (nullptr or one process: nothing to do).
void sum_over(comm::ProcessGroup* group, std::span<double> values,
              comm::ReduceOp op = comm::ReduceOp::kSum);
void sum_over(comm::ProcessGroup* group, std::span<float> values);

// The rows of every process, in rank order (which is the table's order): each process gives
// its own, every process gets all.
[[nodiscard]] std::vector<float> gather_rows(comm::ProcessGroup* group,
                                             const std::vector<float>& rows);
[[nodiscard]] std::vector<double> gather_values(comm::ProcessGroup* group,
                                                const std::vector<double>& values);

// A process without rows is a data set split finer than it has rows: throws ValueError naming
// the rank, `what` (the estimator) first.
void check_every_process_has_rows(const RowSource& rows, comm::ProcessGroup* group,
                                  const std::string& what);

}  // namespace tessera::estimators
