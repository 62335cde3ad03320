// The checks a P2pEngine makes on what a peer wrote into shared memory (p2p_wire.h): a ring's
// head and tail, and each message header in it. Whatever they accept must be safe to act on: the
// unread bytes lie inside the ring, and a message's length is one a sender could have written.
//
// Input: head (8 bytes), tail (8 bytes), a capacity exponent (1 byte), then the ring's bytes.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "comm/shm/p2p_wire.h"
#include "tessera/comm/errors.h"

namespace {

namespace shm = tessera::comm::shm;

// Reads `n` bytes at `pos` of a ring as the engine does: wrapping at `capacity`.
void ring_read(const std::vector<std::byte>& ring, std::uint64_t pos, std::byte* dst,
               std::size_t n) {
  if (n == 0) return;  // an empty message's buffer may be null, which memcpy must not get
  const std::size_t at = pos % ring.size();
  const std::size_t first = std::min(n, ring.size() - at);
  std::memcpy(dst, ring.data() + at, first);
  std::memcpy(dst + first, ring.data(), n - first);
}

// Walks the unread bytes of a ring as the receiving engine does, message by message.
void drain(const std::vector<std::byte>& ring, shm::RingPositions positions) {
  std::uint64_t tail = positions.tail;
  std::vector<std::byte> message;
  while (positions.head - tail >= shm::kMessageHeaderBytes) {
    std::array<std::byte, shm::kMessageHeaderBytes> bytes;
    ring_read(ring, tail, bytes.data(), bytes.size());
    const shm::MessageHeader header = shm::decode_message_header(bytes, 1);
    if (header.length > shm::kMaxMessageBytes) __builtin_trap();
    if (shm::encode_message_header(header) != bytes) __builtin_trap();
    tail += shm::kMessageHeaderBytes;
    // The buffer grows with the bytes present, never with what the header claims.
    const std::size_t present =
        static_cast<std::size_t>(std::min<std::uint64_t>(header.length, positions.head - tail));
    message.resize(present);
    ring_read(ring, tail, message.data(), present);
    tail += present;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 17) return 0;
  shm::RingPositions positions;
  std::memcpy(&positions.head, data, 8);
  std::memcpy(&positions.tail, data + 8, 8);
  // Rings from 16 bytes to 64 KiB: powers of two, as ring_bytes_for() makes them.
  const std::size_t capacity = std::size_t{16} << (data[16] % 13);
  std::vector<std::byte> ring(capacity);
  std::memcpy(ring.data(), data + 17, std::min(capacity, size - 17));
  try {
    shm::check_ring(positions, capacity, 1, 0);
  } catch (const tessera::comm::CommError&) {
    return 0;
  }
  if (positions.tail > positions.head || positions.head - positions.tail > capacity) {
    __builtin_trap();
  }
  try {
    drain(ring, positions);
  } catch (const tessera::comm::CommError&) {
  }
  return 0;
}
