#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <span>
#include <string>

namespace tessera {

// Writes little-endian scalars, length-prefixed strings and raw bytes to a stream.
// Not thread-safe. Throws FormatError when the stream fails.
class BinaryWriter {
 public:
  explicit BinaryWriter(std::ostream& out) : out_(out) {}
  void write_u32(uint32_t v);
  void write_u64(uint64_t v);
  void write_i64(int64_t v) { write_u64(static_cast<uint64_t>(v)); }
  void write_f64(double v);
  void write_string(const std::string& s);
  void write_bytes(std::span<const std::byte> bytes);

 private:
  std::ostream& out_;
};

// Reads what BinaryWriter wrote. A short read throws FormatError naming `what` (the source, e.g. a
// file name) and the byte offset where data ran out.
class BinaryReader {
 public:
  BinaryReader(std::istream& in, std::string what) : in_(in), what_(std::move(what)) {}
  uint32_t read_u32();
  uint64_t read_u64();
  int64_t read_i64() { return static_cast<int64_t>(read_u64()); }
  double read_f64();
  // Refuses strings longer than max_len or than the bytes left, before allocating for them.
  std::string read_string(size_t max_len = 1 << 20);
  void read_bytes(std::span<std::byte> bytes);
  uint64_t offset() const { return offset_; }
  // Bytes left to read when the stream can tell (a file, a string stream), else nullopt. Lets a
  // reader refuse a corrupt length before allocating for it.
  std::optional<uint64_t> remaining() const;
  const std::string& source() const { return what_; }

 private:
  std::istream& in_;
  std::string what_;
  uint64_t offset_ = 0;
};

}  // namespace tessera
