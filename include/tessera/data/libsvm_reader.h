#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "tessera/data/in_memory_dataset.h"

namespace tessera::data {

// The most features read_libsvm infers from a file's indices (data.num_features raises it).
inline constexpr int64_t kMaxInferredLibsvmFeatures = int64_t{1} << 24;

struct LibsvmOptions {
  // Feature count: indices must lie in 1 .. num_features. 0: the largest index in the file, at
  // most kMaxInferredLibsvmFeatures.
  int64_t num_features = 0;
  // LIBSVM labels name classes ("-1"/"+1", "1".."C", any integers), as LIBSVM's own tools read
  // them. Empty: the distinct labels of this file, in ascending order, become classes 0, 1, ...
  // Set: the labels of classes 0, 1, ... (a test set read with its training set's labels); a
  // label not among them is a FormatError naming its line.
  std::vector<int64_t> class_labels{};
  // Most bytes the dense features may take; 0: this machine's physical memory.
  uint64_t memory_limit = 0;
};

// Reads a LIBSVM / SVMlight file into dense rows: features float32 [N, num_features] (absent
// features are 0), labels int64 [N] holding class indices; the dataset's class_labels() gives the
// label each class had in the file, and origin(i) the line of sample i.
//
// Format, one record per line: `<label> [qid:<n>] <index>:<value> <index>:<value> ...`, fields
// separated by spaces or tabs; indices 1-based and strictly increasing; `#` starts a comment
// that runs to the end of the line; blank lines are skipped; qid is accepted and ignored. The
// label must be an integer ("+1", "-1", "3"), mapped to a class as LibsvmOptions says.
//
// Errors name file:line and the offending pair: a malformed pair, index 0, an index out of
// order, an index above options.num_features (or kMaxInferredLibsvmFeatures), a value or label
// that is not a number, a label outside options.class_labels are FormatErrors, and so are a file
// with no records and a dense matrix larger than this machine's memory. A negative num_features
// or unsorted class_labels are ValueErrors; so is a file that cannot be opened.
[[nodiscard]] InMemoryDataset read_libsvm(const std::filesystem::path& path,
                                          const LibsvmOptions& options = {});

}  // namespace tessera::data
