#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

// What a P2pEngine reads from a peer through shared memory, checked before use: the positions of
// a ring and the header of each message in it. Pure functions, so that a fuzz harness can call
// them.
namespace tessera::comm::shm {

// A message in a ring is this header, then `length` bytes. The header holds the tag (bytes
// 0-3), zeros (4-7) and the length (8-15), in the host's byte order.
inline constexpr std::size_t kMessageHeaderBytes = 16;
// No message is longer than a process can address (57 bits on x86-64 with 5-level page tables):
// a longer length is a corrupt header, not a message.
inline constexpr std::uint64_t kMaxMessageBytes = std::uint64_t{1} << 57;

struct MessageHeader {
  std::uint32_t tag = 0;
  std::uint64_t length = 0;
};

[[nodiscard]] std::array<std::byte, kMessageHeaderBytes> encode_message_header(
    const MessageHeader& header);

// Throws CommError naming rank `sender` and the field when `bytes` cannot be a header that a
// sender wrote (nonzero padding, a length beyond kMaxMessageBytes).
[[nodiscard]] MessageHeader decode_message_header(
    std::span<const std::byte, kMessageHeaderBytes> bytes, int sender);

// A ring's positions as read from shared memory: bytes written (head) and consumed (tail) since
// the start.
struct RingPositions {
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
};

// Throws CommError naming the ring (from `sender` to `receiver`) and the field when the positions
// cannot hold for a ring of `capacity` bytes: tail beyond head, or more unread bytes than fit.
void check_ring(const RingPositions& positions, std::size_t capacity, int sender, int receiver);

}  // namespace tessera::comm::shm
