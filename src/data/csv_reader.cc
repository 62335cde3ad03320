#include "tessera/data/csv_reader.h"

#include <cstring>
#include <limits>
#include <utility>

#include "line_reader.h"
#include "tessera/core/error.h"
#include "tessera/tensor/dtype.h"
#include "text_fields.h"

namespace tessera::data {

namespace {

// Splits a line at `delimiter`, calling fn(field, begin_column) with each field untrimmed and
// the 0-based character offset where it starts. Returns the number of fields.
template <typename Fn>
int64_t for_each_field(std::string_view line, char delimiter, Fn&& fn) {
  int64_t count = 0;
  size_t start = 0;
  for (;;) {
    if (count == kMaxCsvColumns) return count + 1;  // the caller reports the excess
    const void* hit = std::memchr(line.data() + start, delimiter, line.size() - start);
    const size_t end = hit == nullptr
                           ? line.size()
                           : static_cast<size_t>(static_cast<const char*>(hit) - line.data());
    fn(line.substr(start, end - start), start, count);
    ++count;
    if (hit == nullptr) return count;
    start = end + 1;
  }
}

std::string unquote(std::string_view s) {
  s = text::trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

}  // namespace

CsvReader::CsvReader(std::filesystem::path path, CsvOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  const std::string name = path_.string();
  if (!options_.label_column.empty() && options_.label_index.has_value()) {
    throw ValueError(detail::concat(name, ": CsvOptions sets both label_column '",
                                    options_.label_column, "' and label_index ",
                                    *options_.label_index, "; set one"));
  }
  if (!options_.label_column.empty() && !options_.has_header) {
    throw ValueError(detail::concat(name, ": label column '", options_.label_column,
                                    "' is given by name, which needs has_header = true"));
  }
  if (options_.delimiter == '\n' || options_.delimiter == '\r') {
    throw ValueError(name + ": CsvOptions::delimiter cannot be a line break");
  }
  lines_ = std::make_unique<LineReader>(path_);

  std::string_view line;
  bool found = false;
  while (lines_->next(line)) {
    if (!text::trim(line).empty()) {
      found = true;
      break;
    }
  }
  if (!found) {
    throw FormatError(detail::concat(
        name, ": empty file (", lines_->line_number(), " lines, none with text): expected ",
        options_.has_header ? "a header line naming the columns" : "at least one record"));
  }
  num_columns_ =
      for_each_field(line, options_.delimiter, [&](std::string_view field, size_t, int64_t index) {
        column_names_.push_back(options_.has_header ? unquote(field)
                                                    : detail::concat("column_", index + 1));
      });
  if (num_columns_ > kMaxCsvColumns) {
    throw FormatError(detail::concat(name, ":", lines_->line_number(), ": more than ",
                                     kMaxCsvColumns, " columns, the most tessera reads"));
  }
  if (!options_.has_header) {
    // The first line is a record: read it again.
    lines_->seek(lines_->line_offset(), lines_->line_number());
  }

  if (!options_.label_column.empty()) {
    for (int64_t i = 0; i < num_columns_; ++i) {
      if (column_names_[static_cast<size_t>(i)] == options_.label_column) {
        label_column_ = i;
        break;
      }
    }
    if (label_column_ < 0) {
      std::string known;
      for (size_t i = 0; i < column_names_.size() && i < 8; ++i) {
        known += (i == 0 ? "'" : ", '") + column_names_[i] + "'";
      }
      if (column_names_.size() > 8) known += ", ...";
      throw ValueError(detail::concat(name, ":1: no column named '", options_.label_column,
                                      "' in the header; columns are ", known));
    }
  } else if (options_.label_index.has_value()) {
    const int64_t index = *options_.label_index;
    label_column_ = index < 0 ? index + num_columns_ : index;
    if (label_column_ < 0 || label_column_ >= num_columns_) {
      throw ValueError(detail::concat(name, ": label_index ", index, " is outside the ",
                                      num_columns_, " columns (valid: ", -num_columns_, " .. ",
                                      num_columns_ - 1, ")"));
    }
  }
  if (num_features() == 0) {
    throw ValueError(detail::concat(name,
                                    ": the only column is the label column; expected at "
                                    "least one feature column"));
  }
}

CsvReader::~CsvReader() = default;

int64_t CsvReader::num_features() const { return num_columns_ - (label_column_ >= 0 ? 1 : 0); }

int64_t CsvReader::read_rows(int64_t max_rows, std::vector<float>& features,
                             std::vector<int64_t>& labels, std::vector<int64_t>* lines) {
  int64_t rows = 0;
  std::string_view line;
  const char delimiter = options_.delimiter;
  while (rows < max_rows && lines_->next(line)) {
    if (text::trim(line).empty()) continue;
    int64_t label = 0;
    const int64_t fields =
        for_each_field(line, delimiter, [&](std::string_view raw, size_t begin, int64_t column) {
          if (column >= num_columns_) return;  // a ragged row; reported below with its count
          const std::string_view field = text::trim(raw);
          if (column == label_column_) {
            if (!text::parse_label(field, label)) {
              throw FormatError(detail::concat(
                  path_.string(), ":", lines_->line_number(), ":", begin + 1, ": field ",
                  column + 1, " (label column '", column_names_[static_cast<size_t>(column)],
                  "'): expected an integer class label, got ", text::quoted(field)));
            }
            return;
          }
          float value = 0.0f;
          if (!text::parse_number(field, value)) {
            throw FormatError(detail::concat(path_.string(), ":", lines_->line_number(), ":",
                                             begin + 1, ": field ", column + 1, " (column '",
                                             column_names_[static_cast<size_t>(column)],
                                             "'): expected a number, got ", text::quoted(field)));
          }
          features.push_back(value);
        });
    if (fields != num_columns_) {
      // Character column where the row departs from the expected layout: the first extra field,
      // or the end of the line when fields are missing.
      size_t column = line.size() + 1;
      if (fields > num_columns_) {
        for_each_field(line, delimiter, [&](std::string_view, size_t begin, int64_t index) {
          if (index == num_columns_) column = begin + 1;
        });
      }
      throw FormatError(detail::concat(
          path_.string(), ":", lines_->line_number(), ":", column, ": expected ", num_columns_,
          " fields (as ", options_.has_header ? "the header has" : "the first record has",
          "), got ", fields));
    }
    labels.push_back(label);
    if (lines != nullptr) lines->push_back(lines_->line_number());
    ++rows;
  }
  return rows;
}

int64_t CsvReader::skip_rows(int64_t max_rows) {
  int64_t rows = 0;
  std::string_view line;
  while (rows < max_rows && lines_->next(line)) {
    if (!text::trim(line).empty()) ++rows;
  }
  return rows;
}

CsvReader::Position CsvReader::position() const {
  return {lines_->next_offset(), lines_->next_line_number()};
}

void CsvReader::seek(const Position& position) { lines_->seek(position.offset, position.line); }

InMemoryDataset read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  CsvReader reader(path, options);
  const CsvReader::Position start = reader.position();
  std::vector<float> features;
  std::vector<int64_t> labels;
  std::vector<int64_t> lines;
  const int64_t rows =
      reader.read_rows(std::numeric_limits<int64_t>::max(), features, labels, &lines);
  if (rows == 0) {
    throw FormatError(detail::concat(path.string(), ":", start.line,
                                     ": no records: expected at least one",
                                     options.has_header ? " after the header" : ""));
  }
  InMemoryDataset dataset(Tensor::from_vector(features, {rows, reader.num_features()}),
                          Tensor::from_vector(labels, {rows}));
  dataset.set_origin({path.string(), std::move(lines)});
  return dataset;
}

}  // namespace tessera::data
