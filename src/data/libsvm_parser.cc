#include "libsvm_parser.h"

#include <algorithm>
#include <functional>

#include "tessera/core/error.h"
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

void SparseRows::clear() {
  labels.clear();
  lines.clear();
  row_starts.assign(1, 0);
  indices.clear();
  values.clear();
  max_index = 0;
  max_index_line = 0;
}

void check_libsvm_options(const std::string& file, const LibsvmOptions& options) {
  if (options.num_features < 0) {
    throw ValueError(detail::concat(file, ": LibsvmOptions::num_features is ", options.num_features,
                                    ", expected >= 0 (0: infer)"));
  }
  const auto& given = options.class_labels;
  if (std::adjacent_find(given.begin(), given.end(), std::greater_equal<>()) != given.end()) {
    throw ValueError(file + ": LibsvmOptions::class_labels must be strictly increasing");
  }
}

bool libsvm_record_text(std::string_view& line) {
  const size_t comment = line.find('#');
  if (comment != std::string_view::npos) line = line.substr(0, comment);
  // Blank by the fields' own separators: a line of only '\v' or '\f' has no field either.
  return std::any_of(line.begin(), line.end(), [](char c) { return !is_space(c); });
}

void LibsvmParser::parse_line(std::string_view line, int64_t line_number, SparseRows& rows) {
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
  if (token_count == 0) fail(0, "expected a record, got a line of no fields");
  rows.lines.push_back(line_number);
  rows.row_starts.push_back(static_cast<int64_t>(rows.indices.size()));
}

void LibsvmParser::fail(size_t begin, const std::string& what) const {
  throw FormatError(detail::concat(name_, ":", line_number_, ":", begin + 1, ": ", what));
}

int64_t LibsvmParser::parse_pair(std::string_view token, int64_t token_index, size_t begin,
                                 int64_t previous, SparseRows& rows) const {
  const auto pair = [&] { return detail::concat("pair ", token_index, " ", text::quoted(token)); };
  const size_t colon = token.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == token.size()) {
    fail(begin, pair() + ": expected index:value");
  }
  int64_t index = 0;
  if (!text::parse_number(token.substr(0, colon), index)) {
    fail(begin, pair() + ": expected an integer feature index before ':'");
  }
  if (index < 1) {
    fail(begin, detail::concat(pair(), ": feature index ", index, ": indices are 1-based"));
  }
  if (index <= previous) {
    fail(begin, detail::concat(pair(), ": feature index ", index, " after ", previous,
                               ": expected strictly increasing indices"));
  }
  if (index > limit_) {
    fail(begin, inferred_ ? detail::concat(pair(), ": feature index ", index, " is above ", limit_,
                                           ", the most features tessera infers from a file (rows "
                                           "are stored dense); set data.num_features to allow it")
                          : detail::concat(pair(), ": feature index ", index,
                                           " is above num_features ", limit_));
  }
  float value = 0.0f;
  if (!text::parse_number(token.substr(colon + 1), value)) {
    fail(begin + colon + 1, pair() + ": expected a number after ':'");
  }
  rows.indices.push_back(index - 1);
  rows.values.push_back(value);
  return index;
}

}  // namespace tessera::data
