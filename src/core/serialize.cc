#include "tessera/core/serialize.h"

#include <bit>
#include <cstring>

#include "tessera/core/error.h"

namespace tessera {

static_assert(std::endian::native == std::endian::little, "tessera's formats are little-endian");

void BinaryWriter::write_bytes(std::span<const std::byte> bytes) {
  out_.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  if (!out_) throw FormatError("write failed");
}

void BinaryWriter::write_u32(uint32_t v) { write_bytes(std::as_bytes(std::span(&v, 1))); }
void BinaryWriter::write_u64(uint64_t v) { write_bytes(std::as_bytes(std::span(&v, 1))); }
void BinaryWriter::write_f64(double v) { write_bytes(std::as_bytes(std::span(&v, 1))); }

void BinaryWriter::write_string(const std::string& s) {
  write_u64(s.size());
  write_bytes(std::as_bytes(std::span(s.data(), s.size())));
}

void BinaryReader::read_bytes(std::span<std::byte> bytes) {
  in_.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  auto got = static_cast<uint64_t>(in_.gcount());
  if (got != bytes.size()) {
    throw FormatError(detail::concat(what_, ": truncated at byte ", offset_ + got, ": expected ",
                                     bytes.size(), " more bytes"));
  }
  offset_ += got;
}

std::optional<uint64_t> BinaryReader::remaining() const {
  const std::istream::pos_type here = in_.tellg();
  if (here == std::istream::pos_type(-1)) return std::nullopt;
  in_.seekg(0, std::ios::end);
  const std::istream::pos_type end = in_.tellg();
  if (!in_ || end == std::istream::pos_type(-1)) {
    in_.clear();
    in_.seekg(here);
    return std::nullopt;
  }
  in_.seekg(here);
  return static_cast<uint64_t>(end - here);
}

uint32_t BinaryReader::read_u32() {
  uint32_t v;
  read_bytes(std::as_writable_bytes(std::span(&v, 1)));
  return v;
}

uint64_t BinaryReader::read_u64() {
  uint64_t v;
  read_bytes(std::as_writable_bytes(std::span(&v, 1)));
  return v;
}

double BinaryReader::read_f64() {
  double v;
  read_bytes(std::as_writable_bytes(std::span(&v, 1)));
  return v;
}

std::string BinaryReader::read_string(size_t max_len) {
  uint64_t at = offset_;
  uint64_t len = read_u64();
  if (len > max_len) {
    throw FormatError(detail::concat(what_, ": at byte ", at, ": string length ", len,
                                     " exceeds limit ", max_len));
  }
  if (auto left = remaining(); left && *left < len) {
    throw FormatError(detail::concat(what_, ": truncated at byte ", offset_ + *left,
                                     ": a string of ", len, " bytes (length at byte ", at,
                                     ") has only ", *left, " bytes left"));
  }
  std::string s(len, '\0');
  read_bytes(std::as_writable_bytes(std::span(s.data(), s.size())));
  return s;
}

}  // namespace tessera
