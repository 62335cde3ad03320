#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

// Memory a server shares with one worker's connection when both run on one host, so that message
// bodies pass through it instead of through the socket (the socket still carries every header).
// The server creates it as a sealed memfd (it can neither shrink nor grow, so no access to it can
// fault, whatever the worker does to its own mapping), writes a random nonce at its start and
// tells the worker its pid, descriptor number and nonce. The worker opens /proc/<pid>/fd/<fd>: only
// a process of the server's user on the server's host (and in its pid namespace) can, and the
// nonce tells it that it found the right one. Anywhere else the worker keeps to the socket.
namespace tessera::parallel::ps {

inline constexpr std::size_t kSegmentNonceBytes = 16;
// The nonce's part of a segment, before the bytes it shares.
inline constexpr std::size_t kSegmentHeaderBytes = 64;

// What the server tells the worker (the kSegment reply).
struct SegmentInfo {
  uint32_t pid = 0;
  int32_t fd = -1;
  uint64_t bytes = 0;  // shared, after the header
  std::array<std::byte, kSegmentNonceBytes> nonce{};
};

class SharedSegment {
 public:
  SharedSegment() = default;
  SharedSegment(SharedSegment&& other) noexcept;
  SharedSegment& operator=(SharedSegment&& other) noexcept;
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;
  ~SharedSegment();

  // The server's side: a new segment sharing `bytes` (zeros). Throws comm::CommError with the
  // system's reason.
  static SharedSegment create(uint64_t bytes);
  // The worker's side: the server's segment, or nullopt when this process cannot reach it.
  // Read-only when `writable` is false: the worker only reads a table the server shares.
  static std::optional<SharedSegment> open(const SegmentInfo& info, bool writable = true);

  [[nodiscard]] SegmentInfo info() const { return info_; }
  // The shared bytes, 64-byte aligned.
  [[nodiscard]] std::span<std::byte> bytes() const {
    return base_ == nullptr ? std::span<std::byte>()
                            : std::span(base_ + kSegmentHeaderBytes, info_.bytes);
  }
  [[nodiscard]] uint64_t size() const { return base_ == nullptr ? 0 : info_.bytes; }

 private:
  void release() noexcept;

  int fd_ = -1;
  std::byte* base_ = nullptr;  // the mapping, header first
  SegmentInfo info_;
};

// Where a reply goes in the segment after a request of `request_bytes` came through it.
[[nodiscard]] inline uint64_t reply_offset(uint64_t request_bytes) {
  return (request_bytes + 63) / 64 * 64;
}

}  // namespace tessera::parallel::ps
