#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tessera/data/csv_reader.h"
#include "tessera/data/dataset.h"
#include "tessera/train/config.h"

namespace tessera::train {

// What a data set must match to feed a model: the training set's sample shape and class labels
// (for data.test), or a saved model's (for `tessera eval`).
struct DataLayout {
  Shape sample_shape;                 // empty: any
  std::vector<int64_t> class_labels;  // see data::Dataset::class_labels
  // For predictions: a CSV file without the label column (data.label_column, by name) is read
  // as features alone, every label 0.
  bool labels_optional = false;
};

// Opens the data set a [data] spec names:
//   "fashion-mnist:train" / "fashion-mnist:test"  Debian's dataset-fashion-mnist, in memory
//   "idx:IMAGES,LABELS"   IDX files; memory-mapped (streamed from disk) unless gzip-compressed
//   "csv:PATH"            numeric CSV with a header; label column from data.label_column;
//                         loaded, or streamed a block at a time with data.stream
//   "libsvm:PATH"         LIBSVM/SVMlight sparse rows, densified; data.num_features (0: infer);
//                         loaded, or streamed a chunk at a time with data.stream
// With `layout`, a LIBSVM file takes its feature count (unless data.num_features sets one) and
// class labels from it, and a data set whose samples have another shape is a ConfigError.
// An unknown scheme throws ConfigError naming `key` (e.g. "data.train"); file problems throw the
// readers' errors, which name the file and position.
// The CSV file at `path`, loaded or (data.stream) streamed from disk.
[[nodiscard]] std::unique_ptr<data::Dataset> open_csv_file(const std::string& path,
                                                           const data::CsvOptions& options,
                                                           const Config& config);

[[nodiscard]] std::unique_ptr<data::Dataset> open_dataset(const std::string& spec,
                                                          const Config& config,
                                                          const std::string& key,
                                                          const DataLayout* layout = nullptr);

}  // namespace tessera::train
