#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tessera {

// CRC-32 (IEEE 802.3 polynomial, as zlib computes it). Pass the previous result as `crc` to
// checksum data that arrives in pieces.
uint32_t crc32(std::span<const std::byte> data, uint32_t crc = 0);

}  // namespace tessera
