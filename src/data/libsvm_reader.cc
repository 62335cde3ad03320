#include "tessera/data/libsvm_reader.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "line_reader.h"
#include "tessera/core/error.h"
#include "tessera/core/memory.h"
#include "tessera/tensor/dtype.h"
#include "text_fields.h"

namespace tessera::data {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Calls fn(token, begin) for each whitespace-separated token, begin its 0-based offset.
template <typename Fn>
void for_each_token(std::string_view line, Fn&& fn) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) return;
    const size_t begin = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    fn(line.substr(begin, i - begin), begin);
  }
}

// The file's records, sparse, before they become dense rows.
struct SparseRows {
  std::vector<int64_t> labels;  // as written in the file
  std::vector<int64_t> lines;   // 1-based line of each record
  std::vector<int64_t> row_starts{0};
  std::vector<int64_t> indices;  // 0-based
  std::vector<float> values;
  int64_t max_index = 0;  // 1-based, as written
  int64_t max_index_line = 0;
};

class Parser {
 public:
  Parser(std::string name, const LibsvmOptions& options)
      : name_(std::move(name)),
        limit_(options.num_features > 0 ? options.num_features : kMaxInferredLibsvmFeatures),
        inferred_(options.num_features == 0) {}

  void parse_line(std::string_view line, int64_t line_number, SparseRows& rows) {
    line_number_ = line_number;
    int64_t token_count = 0;
    int64_t previous = 0;
    for_each_token(line, [&](std::string_view token, size_t begin) {
      const int64_t token_index = token_count++;
      if (token_index == 0) {
        int64_t label = 0;
        if (!text::parse_label(token, label)) {
          fail(begin, detail::concat("expected an integer class label as the first field, got ",
                                     text::quoted(token)));
        }
        rows.labels.push_back(label);
        return;
      }
      if (token.starts_with("qid:")) return;  // SVMlight's query id: not a feature
      const int64_t index = parse_pair(token, token_index, begin, previous, rows);
      previous = index;
      if (index > rows.max_index) {
        rows.max_index = index;
        rows.max_index_line = line_number;
      }
    });
    rows.lines.push_back(line_number);
    rows.row_starts.push_back(static_cast<int64_t>(rows.indices.size()));
  }

 private:
  [[noreturn]] void fail(size_t begin, const std::string& what) const {
    throw FormatError(detail::concat(name_, ":", line_number_, ":", begin + 1, ": ", what));
  }

  // Reads `index:value`; returns the 1-based index.
  int64_t parse_pair(std::string_view token, int64_t token_index, size_t begin, int64_t previous,
                     SparseRows& rows) const {
    const auto pair = [&] {
      return detail::concat("pair ", token_index, " ", text::quoted(token));
    };
    const size_t colon = token.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == token.size()) {
      fail(begin, pair() + ": expected index:value");
    }
    int64_t index = 0;
    if (!text::parse_number(token.substr(0, colon), index)) {
      fail(begin, pair() + ": expected an integer feature index before ':'");
    }
    if (index < 1)
      fail(begin, detail::concat(pair(), ": feature index ", index, ": indices are 1-based"));
    if (index <= previous) {
      fail(begin, detail::concat(pair(), ": feature index ", index, " after ", previous,
                                 ": expected strictly increasing indices"));
    }
    if (index > limit_) {
      fail(begin, inferred_
                      ? detail::concat(pair(), ": feature index ", index, " is above ", limit_,
                                       ", the most features tessera infers from a file (rows "
                                       "are stored dense); set data.num_features to allow it")
                      : detail::concat(pair(), ": feature index ", index, " is above num_features ",
                                       limit_));
    }
    float value = 0.0f;
    if (!text::parse_number(token.substr(colon + 1), value)) {
      fail(begin + colon + 1, pair() + ": expected a number after ':'");
    }
    rows.indices.push_back(index - 1);
    rows.values.push_back(value);
    return index;
  }

  std::string name_;
  int64_t limit_;
  bool inferred_;
  int64_t line_number_ = 0;
};

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
  if (options.num_features < 0) {
    throw ValueError(detail::concat(name, ": LibsvmOptions::num_features is ", options.num_features,
                                    ", expected >= 0 (0: infer)"));
  }
  const auto& given = options.class_labels;
  if (std::adjacent_find(given.begin(), given.end(), std::greater_equal<>()) != given.end()) {
    throw ValueError(name + ": LibsvmOptions::class_labels must be strictly increasing");
  }
  LineReader lines(path);
  Parser parser(name, options);
  SparseRows rows;
  std::string_view line;
  while (lines.next(line)) {
    const size_t comment = line.find('#');
    if (comment != std::string_view::npos) line = line.substr(0, comment);
    if (text::trim(line).empty()) continue;
    parser.parse_line(line, lines.line_number(), rows);
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
