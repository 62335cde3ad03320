#pragma once

#include <cstdint>
#include <filesystem>

#include "tessera/data/in_memory_dataset.h"

namespace tessera::data {

struct LibsvmOptions {
  // Feature count: indices must lie in 1 .. num_features. 0: the largest index in the file.
  int64_t num_features = 0;
};

// Reads a LIBSVM / SVMlight file into dense rows: features float32 [N, num_features] (absent
// features are 0), labels int64 [N].
//
// Format, one record per line: `<label> [qid:<n>] <index>:<value> <index>:<value> ...`, fields
// separated by spaces or tabs; indices 1-based and strictly increasing; `#` starts a comment
// that runs to the end of the line; blank lines are skipped; qid is accepted and ignored. The
// label must be an integer ("+1", "-1", "3"; class labels, kept as they are).
//
// Errors name file:line and the offending pair: a malformed pair, index 0, an index out of
// order, an index above options.num_features, a value or label that is not a number are
// FormatErrors, and so is a file with no records. A negative num_features is a ValueError; a file
// that cannot be opened is a ValueError.
[[nodiscard]] InMemoryDataset read_libsvm(const std::filesystem::path& path,
                                          const LibsvmOptions& options = {});

}  // namespace tessera::data
