#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/data/dataset.h"
#include "tessera/estimators/row_source.h"
#include "tessera/train/config.h"
#include "tessera/train/data_source.h"

namespace tessera::train {

// A data set for an estimator and which of its features is the target (-1: its labels are).
struct EstimatorTable {
  std::shared_ptr<data::Dataset> data;
  int64_t target = -1;
};

// Opens `spec` for the estimator [model] names. A regression's target is a CSV column
// (data.label_column, a name or a 0-based index): the file is read as features only and the
// target taken out of each row. `layout` (a saved model's) is open_dataset's; with its
// labels_optional, a CSV file without the label (or target) column is read as features alone.
// Throws ConfigError naming `key` for a data set the model cannot read.
[[nodiscard]] EstimatorTable open_estimator_table(const std::string& spec, const Config& config,
                                                  const std::string& key,
                                                  const DataLayout* layout = nullptr);

// This process's rows of the table: rows [r N / P, (r + 1) N / P) of `group`'s P processes.
[[nodiscard]] std::unique_ptr<estimators::RowSource> table_rows(const EstimatorTable& table,
                                                                comm::ProcessGroup* group);

// Throws ConfigError naming `key` (in `source`) when the rows of `spec` have another feature count
// than `reference` (the training set, a saved model), whose count the model takes.
void check_feature_count(const estimators::RowSource& rows, const std::string& spec,
                         int64_t model_features, const std::string& reference,
                         const std::string& source, const std::string& key);

}  // namespace tessera::train
