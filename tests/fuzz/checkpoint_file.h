#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>

#include "tessera/core/crc32.h"
#include "tessera/core/serialize.h"

namespace tessera::fuzz {

// A checkpoint file around `payload` with a valid header and checksum, so that a harness's
// mutations reach the sections instead of stopping at the checksum.
inline std::string with_valid_header(const uint8_t* payload, size_t size) {
  std::ostringstream file;
  BinaryWriter w(file);
  const auto bytes = std::span(reinterpret_cast<const std::byte*>(payload), size);
  w.write_bytes(std::as_bytes(std::span("TSRACKPT", 8)));
  w.write_u32(1);
  w.write_u64(size);
  w.write_bytes(bytes);
  w.write_u32(crc32(bytes));
  return file.str();
}

// The harnesses' first byte: bit 0 clear, the rest is a whole file; set, a payload under a valid
// header.
inline std::string checkpoint_bytes(const uint8_t* data, size_t size) {
  return (data[0] & 1) != 0 ? with_valid_header(data + 1, size - 1)
                            : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
}

}  // namespace tessera::fuzz
