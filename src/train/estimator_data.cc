#include "estimator_data.h"

#include <algorithm>
#include <charconv>

#include "tessera/core/error.h"
#include "tessera/data/csv_reader.h"

namespace tessera::train {
namespace {

// The column data.label_column names (its name, else a 0-based index), -1 when there is none.
int64_t find_column(const std::vector<std::string>& names, const std::string& column) {
  if (auto at = std::find(names.begin(), names.end(), column); at != names.end()) {
    return at - names.begin();
  }
  int64_t index = 0;
  const auto [end, ec] = std::from_chars(column.data(), column.data() + column.size(), index);
  if (ec == std::errc() && end == column.data() + column.size() && index >= 0 &&
      index < static_cast<int64_t>(names.size())) {
    return index;
  }
  return -1;
}

EstimatorTable open_regression_table(const std::string& spec, const Config& config,
                                     const std::string& key, bool labels_optional) {
  if (spec.rfind("csv:", 0) != 0) {
    throw ConfigError(config.source, config.model.line, key,
                      "a regression reads its target from a CSV column: expected csv:PATH "
                      "(and data.label_column), got '" +
                          spec + "'");
  }
  const std::string path = spec.substr(4);
  const std::string& column = config.data.label_column;
  const data::CsvReader header(path, data::CsvOptions{});
  const auto& names = header.column_names();
  const int64_t target = find_column(names, column);
  if (target < 0 && !labels_optional) {
    throw ConfigError(config.source, 0, "data.label_column",
                      "'" + column + "' is no column of " + path + " (its columns: " +
                          (names.empty() ? std::string() : names.front()) + ", ...)");
  }
  return {std::shared_ptr<data::Dataset>(open_csv_file(path, data::CsvOptions{}, config)), target};
}

}  // namespace

EstimatorTable open_estimator_table(const std::string& spec, const Config& config,
                                    const std::string& key, const DataLayout* layout) {
  if (is_regression(config.model)) {
    return open_regression_table(spec, config, key, layout != nullptr && layout->labels_optional);
  }
  // Clusters and components need no labels: a CSV file without the label column is features
  // alone.
  DataLayout unlabelled = layout != nullptr ? *layout : DataLayout{};
  unlabelled.labels_optional = true;
  const bool unsupervised = config.model.type == "kmeans" || config.model.type == "pca";
  const DataLayout* used = unsupervised ? &unlabelled : layout;
  return {std::shared_ptr<data::Dataset>(open_dataset(spec, config, key, used)), -1};
}

std::unique_ptr<estimators::RowSource> table_rows(const EstimatorTable& table,
                                                  comm::ProcessGroup* group) {
  return estimators::dataset_rows(table.data, {.rank = group ? group->rank() : 0,
                                               .ranks = group ? group->size() : 1,
                                               .target_feature = table.target});
}

void check_feature_count(const estimators::RowSource& rows, const std::string& spec,
                         int64_t model_features, const std::string& reference,
                         const std::string& source, const std::string& key) {
  if (rows.num_features() != model_features) {
    throw ConfigError(source, 0, key,
                      detail::concat(spec, " has ", rows.num_features(), " features where ",
                                     reference, " has ", model_features));
  }
}

}  // namespace tessera::train
