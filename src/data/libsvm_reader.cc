#include "tessera/data/libsvm_reader.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "libsvm_parser.h"
#include "line_reader.h"
#include "tessera/core/error.h"
#include "tessera/core/memory.h"
#include "tessera/tensor/dtype.h"

namespace tessera::data {

namespace {

// Maps the file's labels to class indices in place; returns the label of each class.
std::vector<int64_t> map_labels(const std::string& name, SparseRows& rows,
                                std::vector<int64_t> class_labels) {
  if (class_labels.empty()) {
    class_labels = rows.labels;
    std::sort(class_labels.begin(), class_labels.end());
    class_labels.erase(std::unique(class_labels.begin(), class_labels.end()), class_labels.end());
  }
  for (size_t r = 0; r < rows.labels.size(); ++r) {
    const auto it = std::lower_bound(class_labels.begin(), class_labels.end(), rows.labels[r]);
    if (it == class_labels.end() || *it != rows.labels[r]) {
      std::string known;
      for (size_t c = 0; c < class_labels.size() && c < 16; ++c) {
        known += (c ? ", " : "") + std::to_string(class_labels[c]);
      }
      if (class_labels.size() > 16) known += ", ...";
      throw FormatError(detail::concat(name, ":", rows.lines[r], ": label ", rows.labels[r],
                                       " is not one of the training set's labels (", known, ")"));
    }
    rows.labels[r] = it - class_labels.begin();
  }
  return class_labels;
}

Tensor densify(const std::string& name, const SparseRows& rows, const LibsvmOptions& options) {
  const auto count = static_cast<int64_t>(rows.labels.size());
  const bool declared = options.num_features > 0;
  const int64_t num_features = declared ? options.num_features : rows.max_index;
  const Shape shape{count, num_features};
  const size_t bytes = shape_bytes(shape, sizeof(float), "read_libsvm");
  const uint64_t limit = options.memory_limit > 0 ? options.memory_limit : physical_memory_bytes();
  if (bytes > limit) {
    const std::string cause =
        declared ? detail::concat(": num_features ", num_features)
                 : detail::concat(":", rows.max_index_line, ": feature index ", num_features);
    throw FormatError(detail::concat(name, cause, " makes the dense ", count, " x ", num_features,
                                     " matrix ", format_bytes(bytes), ", more than ",
                                     format_bytes(limit), " of memory"));
  }
  Tensor features = Tensor::zeros(shape, DType::kFloat32);
  float* dense = features.data<float>();
  for (int64_t r = 0; r < count; ++r) {
    const auto first = rows.row_starts[static_cast<size_t>(r)];
    const auto last = rows.row_starts[static_cast<size_t>(r) + 1];
    for (int64_t k = first; k < last; ++k) {
      dense[r * num_features + rows.indices[static_cast<size_t>(k)]] =
          rows.values[static_cast<size_t>(k)];
    }
  }
  return features;
}

}  // namespace

InMemoryDataset read_libsvm(const std::filesystem::path& path, const LibsvmOptions& options) {
  const std::string name = path.string();
  check_libsvm_options(name, options);
  LineReader lines(path);
  LibsvmParser parser(name,
                      options.num_features > 0 ? options.num_features : kMaxInferredLibsvmFeatures,
                      options.num_features == 0);
  SparseRows rows;
  std::string_view line;
  while (lines.next(line)) {
    if (libsvm_record_text(line)) parser.parse_line(line, lines.line_number(), rows);
  }
  const auto count = static_cast<int64_t>(rows.labels.size());
  if (count == 0) {
    throw FormatError(detail::concat(name, ": no records in ", lines.line_number(),
                                     " lines: expected lines of '<label> <index>:<value> ...'"));
  }
  if (options.num_features == 0 && rows.max_index == 0) {
    throw FormatError(detail::concat(name,
                                     ": no record has a feature, so the feature count "
                                     "cannot be inferred; set LibsvmOptions::num_features"));
  }
  std::vector<int64_t> class_labels = map_labels(name, rows, options.class_labels);
  InMemoryDataset dataset(densify(name, rows, options), Tensor::from_vector(rows.labels, {count}));
  dataset.set_origin({name, std::move(rows.lines)});
  dataset.set_class_labels(std::move(class_labels));
  return dataset;
}

}  // namespace tessera::data
