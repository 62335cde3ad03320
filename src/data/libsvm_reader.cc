#include "tessera/data/libsvm_reader.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "line_reader.h"
#include "tessera/core/error.h"
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

}  // namespace

InMemoryDataset read_libsvm(const std::filesystem::path& path, const LibsvmOptions& options) {
  const std::string name = path.string();
  if (options.num_features < 0) {
    throw ValueError(detail::concat(name, ": LibsvmOptions::num_features is ", options.num_features,
                                    ", expected >= 0 (0: infer)"));
  }
  LineReader lines(path);
  std::vector<int64_t> labels;
  std::vector<int64_t> row_starts{0};
  std::vector<int64_t> indices;
  std::vector<float> values;
  int64_t max_index = 0;

  std::string_view line;
  while (lines.next(line)) {
    const size_t comment = line.find('#');
    if (comment != std::string_view::npos) line = line.substr(0, comment);
    if (text::trim(line).empty()) continue;

    const int64_t line_number = lines.line_number();
    auto fail = [&](size_t begin, const std::string& what) {
      throw FormatError(detail::concat(name, ":", line_number, ":", begin + 1, ": ", what));
    };
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
        labels.push_back(label);
        return;
      }
      if (token.starts_with("qid:")) return;  // SVMlight's query id: not a feature
      const size_t colon = token.find(':');
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == token.size()) {
        fail(begin, detail::concat("pair ", token_index, " ", text::quoted(token),
                                   ": expected index:value"));
      }
      int64_t index = 0;
      if (!text::parse_number(token.substr(0, colon), index)) {
        fail(begin, detail::concat("pair ", token_index, " ", text::quoted(token),
                                   ": expected an integer feature index before ':'"));
      }
      if (index < 1) {
        fail(begin, detail::concat("pair ", token_index, " ", text::quoted(token),
                                   ": feature index ", index, ": indices are 1-based"));
      }
      if (index <= previous) {
        fail(begin,
             detail::concat("pair ", token_index, " ", text::quoted(token), ": feature index ",
                            index, " after ", previous, ": expected strictly increasing indices"));
      }
      if (options.num_features > 0 && index > options.num_features) {
        fail(begin,
             detail::concat("pair ", token_index, " ", text::quoted(token), ": feature index ",
                            index, " is above num_features ", options.num_features));
      }
      float value = 0.0f;
      if (!text::parse_number(token.substr(colon + 1), value)) {
        fail(begin + colon + 1, detail::concat("pair ", token_index, " ", text::quoted(token),
                                               ": expected a number after ':'"));
      }
      previous = index;
      max_index = std::max(max_index, index);
      indices.push_back(index - 1);
      values.push_back(value);
    });
    row_starts.push_back(static_cast<int64_t>(indices.size()));
  }

  const auto rows = static_cast<int64_t>(labels.size());
  if (rows == 0) {
    throw FormatError(detail::concat(name, ": no records in ", lines.line_number(),
                                     " lines: expected lines of '<label> <index>:<value> ...'"));
  }
  const int64_t num_features = options.num_features > 0 ? options.num_features : max_index;
  if (num_features == 0) {
    throw FormatError(detail::concat(name,
                                     ": no record has a feature, so the feature count "
                                     "cannot be inferred; set LibsvmOptions::num_features"));
  }
  Tensor features = Tensor::zeros({rows, num_features}, DType::kFloat32);
  float* dense = features.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = row_starts[static_cast<size_t>(r)]; k < row_starts[static_cast<size_t>(r) + 1];
         ++k) {
      dense[r * num_features + indices[static_cast<size_t>(k)]] = values[static_cast<size_t>(k)];
    }
  }
  return InMemoryDataset(std::move(features), Tensor::from_vector(labels, {rows}));
}

}  // namespace tessera::data
