#pragma once

#include <memory>
#include <string>

#include "tessera/data/dataset.h"
#include "tessera/train/config.h"

namespace tessera::train {

// Opens the data set a [data] spec names:
//   "fashion-mnist:train" / "fashion-mnist:test"  Debian's dataset-fashion-mnist, in memory
//   "idx:IMAGES,LABELS"   IDX files; memory-mapped (streamed from disk) unless gzip-compressed
//   "csv:PATH"            numeric CSV with a header; label column from data.label_column
//   "libsvm:PATH"         LIBSVM/SVMlight sparse rows, densified; data.num_features (0: infer)
// An unknown scheme throws ConfigError naming `key` (e.g. "data.train"); file problems throw the
// readers' errors, which name the file and position.
[[nodiscard]] std::unique_ptr<data::Dataset> open_dataset(const std::string& spec,
                                                          const Config& config,
                                                          const std::string& key);

}  // namespace tessera::train
