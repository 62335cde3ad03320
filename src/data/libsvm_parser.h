#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/data/libsvm_reader.h"

// The one parser of LIBSVM / SVMlight records, shared by read_libsvm (whole file, dense rows) and
// LibsvmStream (record by record, 64-bit ids). Internal to tessera_data.
namespace tessera::data {

// Records as parsed: labels as written, 0-based indices.
struct SparseRows {
  std::vector<int64_t> labels;
  std::vector<int64_t> lines;  // 1-based line of each record
  std::vector<int64_t> row_starts{0};
  std::vector<int64_t> indices;
  std::vector<float> values;
  int64_t max_index = 0;  // 1-based, as written
  int64_t max_index_line = 0;

  void clear();
};

class LibsvmParser {
 public:
  // Indices above `limit` are refused; `inferred` says the limit is the reader's own cap rather
  // than a declared feature count (the error then says how to raise it). `name` starts errors.
  LibsvmParser(std::string name, int64_t limit, bool inferred)
      : name_(std::move(name)), limit_(limit), inferred_(inferred) {}

  // Appends the record on `line` (comment already cut, not blank) to rows. Throws FormatError
  // naming name:line:column and the offending field.
  void parse_line(std::string_view line, int64_t line_number, SparseRows& rows);

 private:
  [[noreturn]] void fail(size_t begin, const std::string& what) const;
  int64_t parse_pair(std::string_view token, int64_t token_index, size_t begin, int64_t previous,
                     SparseRows& rows) const;

  std::string name_;
  int64_t limit_;
  bool inferred_;
  int64_t line_number_ = 0;
};

// Cuts a `#` comment off `line`; false when nothing but blanks is left.
bool libsvm_record_text(std::string_view& line);

// Throws ValueError naming `file` for a negative feature count or class labels not strictly
// increasing.
void check_libsvm_options(const std::string& file, const LibsvmOptions& options);

}  // namespace tessera::data
