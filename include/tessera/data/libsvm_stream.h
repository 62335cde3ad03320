#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

// Reads a LIBSVM / SVMlight file one record at a time, for data sets larger than memory and
// feature ids far beyond what a dense row could hold (hashed models). The format and its errors
// are read_libsvm's (libsvm_reader.h), except that feature indices may be anything from 1 to
// 2^63 - 1 and nothing is inferred or densified.
namespace tessera::data {

class LibsvmStream {
 public:
  // Throws ValueError naming the path when it cannot be opened.
  explicit LibsvmStream(const std::filesystem::path& path);
  ~LibsvmStream();
  LibsvmStream(const LibsvmStream&) = delete;
  LibsvmStream& operator=(const LibsvmStream&) = delete;

  // Parses the next record; false at the end of the file. Throws FormatError naming
  // file:line:column for a malformed one.
  bool next();
  // Passes over the next record without parsing it (another worker's); false at the end.
  bool skip();
  // Back to the first record.
  void rewind();

  // The record next() parsed: its label as written, its 1-based line, and its features
  // (0-based indices, strictly increasing, with their values).
  [[nodiscard]] int64_t label() const;
  [[nodiscard]] int64_t line() const;
  [[nodiscard]] std::span<const int64_t> indices() const;
  [[nodiscard]] std::span<const float> values() const;
  // Records next() and skip() went through since the start or rewind().
  [[nodiscard]] int64_t records() const;
  [[nodiscard]] const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::data
