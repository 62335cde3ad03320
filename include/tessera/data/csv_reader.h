#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/data/in_memory_dataset.h"

namespace tessera::data {

class LineReader;  // src/data/line_reader.h (internal)

// The most columns a CSV file may have.
inline constexpr int64_t kMaxCsvColumns = int64_t{1} << 20;

struct CsvOptions {
  char delimiter = ',';
  // The first non-blank line names the columns.
  bool has_header = true;
  // The label column by header name (needs has_header) ...
  std::string label_column{};
  // ... or by 0-based position; negative counts from the end (-1: the last column). Setting both
  // is a ValueError. Setting neither: every column is a feature and every label is 0.
  std::optional<int64_t> label_index{};
};

// Reads a numeric CSV file record by record, without loading it whole.
//
// Format: one record per line (LF or CRLF); blank lines are skipped; fields are separated by
// options.delimiter and may be padded with spaces or tabs; every field is a number as
// std::from_chars reads it (a leading '+', "nan" and "inf" accepted); quoting is not supported.
// The label field must hold an integer (class labels: "3" or "3.0"). Every record must have as
// many fields as the header (or, without a header, the first record).
//
// Errors: a file that cannot be opened is a ValueError; an empty file, more than kMaxCsvColumns
// columns, a ragged row, a non-numeric field or a non-integer label is a FormatError naming
// file:line:column and what was expected. Not thread-safe; one reader per thread.
class CsvReader {
 public:
  // Where a record starts: its byte offset and 1-based line number.
  struct Position {
    int64_t offset = 0;
    int64_t line = 1;
  };

  // Opens the file and reads the header (or peeks at the first record to count the columns).
  // Throws ValueError for an unknown label column name or an out-of-range label index.
  CsvReader(std::filesystem::path path, CsvOptions options);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] int64_t num_columns() const { return num_columns_; }
  // Columns other than the label.
  [[nodiscard]] int64_t num_features() const;
  // Position of the label column, or -1 when there is none.
  [[nodiscard]] int64_t label_column() const { return label_column_; }
  // Header names; without a header, "column_1", "column_2", ...
  [[nodiscard]] const std::vector<std::string>& column_names() const { return column_names_; }

  // Parses up to max_rows further records, appending num_features() floats per record (columns
  // in file order, the label left out) to features, one label per record to labels and, when
  // given, each record's 1-based line number to lines. Returns the number read; 0 at end of file.
  int64_t read_rows(int64_t max_rows, std::vector<float>& features, std::vector<int64_t>& labels,
                    std::vector<int64_t>* lines = nullptr);
  // Skips up to max_rows records without parsing them (blank lines are not records); returns
  // the number skipped. Used to index a file in one cheap pass.
  int64_t skip_rows(int64_t max_rows);

  // The position of the next record; seek() returns to one obtained from position().
  [[nodiscard]] Position position() const;
  void seek(const Position& position);

 private:
  std::filesystem::path path_;
  CsvOptions options_;
  std::unique_ptr<LineReader> lines_;
  std::vector<std::string> column_names_;
  int64_t num_columns_ = 0;
  int64_t label_column_ = -1;
};

// Reads a whole CSV file into memory: features float32 [N, num_features], labels int64 [N].
// Throws FormatError as CsvReader does, and when the file holds no records at all.
[[nodiscard]] InMemoryDataset read_csv(const std::filesystem::path& path,
                                       const CsvOptions& options = {});

}  // namespace tessera::data
