#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

// Reads a text file line by line through a growing buffer (1 MiB to start), noting each line's
// byte offset and 1-based number, so errors can name file:line and readers can seek back to a
// line. Internal to tessera_data. Not thread-safe.
class LineReader {
 public:
  // Throws ValueError naming the path when the file cannot be opened.
  explicit LineReader(const std::filesystem::path& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (nor a '\r' before it); false at end of file. The view stays
  // valid until the next call to next() or seek(). Throws Error on a read error.
  bool next(std::string_view& line);
  // Number and byte offset of the line next() returned last.
  [[nodiscard]] int64_t line_number() const { return line_number_; }
  [[nodiscard]] int64_t line_offset() const { return line_offset_; }
  // Number and byte offset of the line next() returns next.
  [[nodiscard]] int64_t next_line_number() const { return line_number_ + 1; }
  [[nodiscard]] int64_t next_offset() const { return offset_; }
  // Makes next() continue at byte `offset`, numbering that line `line_number`.
  void seek(int64_t offset, int64_t line_number);
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  // Reads more of the file into the buffer; false when nothing is left.
  bool refill();

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  size_t begin_ = 0;    // first unconsumed byte in buffer_
  size_t end_ = 0;      // one past the last valid byte in buffer_
  size_t scanned_ = 0;  // bytes after begin_ known to hold no '\n'
  bool eof_ = false;
  int64_t offset_ = 0;  // file offset of buffer_[begin_]
  int64_t line_number_ = 0;
  int64_t line_offset_ = 0;
};

}  // namespace tessera::data
