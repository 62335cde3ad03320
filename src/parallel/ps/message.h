#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "shared_segment.h"
#include "tessera/comm/errors.h"

// The parameter server's wire format (protocol version 1). Every message is a 40-byte header and
// a body of header.body_bytes. Integers and floats are little-endian; the header:
//
//   u32 magic "TSPS" | u16 version | u16 type | u32 sender | u32 table | i64 clock |
//   u64 request | u64 body_bytes
//
// type's top bit (kSharedBit) says the body lies in the connection's shared segment
// (shared_segment.h) instead of following the header: a request's at the segment's start, its
// reply's after it, at reply_offset(request's body_bytes).
//
// sender is the worker's index (a server's replies carry the server's); clock is the worker's
// step: a pull for step t waits as the consistency mode says, a push of step t counts it done.
// request is echoed in the reply. Bodies, by type (8-byte fields aligned in the body):
//
//   server, on accept: kChallenge  nonce[32]
//   kHello       nonce[32] proof[32]         -> kWelcome proof[32] | kRefused text
//   kPullDense   i64 offset, i64 count       -> kValues f32[count]
//   kPushDense   f32 lr, u32 0, i64 offset, i64 count, f32[count]   -> kAck
//   kPullSparse  u64 n, u64 keys[n]          -> kValues f32[n * dim]
//   kPushSparse  f32 lr, u32 0, u64 n, u64 keys[n], f32[n * dim]    -> kAck
//   kShareMemory u64 bytes                   -> kSegment u32 pid, i32 fd, u64 bytes, nonce[16]
//   kMapDense    (empty)                     -> kSegment of the server's range of the table
//   kPullMapped  i64 offset, i64 count       -> kAck once the values may be read from the table's
//                                               segment (as kPullDense waits before it answers)
//   kHeartbeat   (empty), no reply
//   kBye         (empty)                     -> kAck; the worker is done
//   any request that cannot be served        -> kError text
//
// A header that does not decode ends the connection (its stream cannot be trusted); a body that
// does not decode is answered with kError and the connection goes on.
namespace tessera::parallel::ps {

// A message that breaks the protocol; the text says which field and value.
class ProtocolError : public comm::CommError {
 public:
  using CommError::CommError;
};

inline constexpr uint32_t kMagic = 0x53505354;  // "TSPS" as little-endian bytes
inline constexpr uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderBytes = 40;
inline constexpr uint64_t kMaxBodyBytes = uint64_t{1} << 30;
// Before the handshake a stranger cannot make the server allocate more than this.
inline constexpr uint64_t kMaxHandshakeBodyBytes = 256;
// A step count no job reaches, with room to count one more.
inline constexpr int64_t kMaxClock = int64_t{1} << 62;

enum class MessageType : uint16_t {
  kChallenge = 1,
  kHello = 2,
  kWelcome = 3,
  kRefused = 4,
  kPullDense = 5,
  kPushDense = 6,
  kPullSparse = 7,
  kPushSparse = 8,
  kValues = 9,
  kAck = 10,
  kError = 11,
  kHeartbeat = 12,
  kBye = 13,
  // A worker asks where it is: the ack's clock is the steps this server has from it (a worker the
  // launcher started again goes on from there).
  kSteps = 14,
  // A worker asks every server to checkpoint its shard as step `clock`'s (the Trainer's
  // checkpoint of that step then has the servers' state with it); acked once written.
  kCheckpoint = 15,
  // A worker asks for a shared segment of at least `bytes` for this connection's bodies; the
  // server answers kSegment, which replaces the segment it had.
  kShareMemory = 16,
  kSegment = 17,
  // On one host a dense table's values live in memory the server shares: a worker maps them once
  // (kMapDense) and then pulls by copying from there once the server says it may (kPullMapped).
  // Under asp and ssp the copy may see parts of a push that lands meanwhile, each value whole.
  kMapDense = 18,
  kPullMapped = 19,
};
inline constexpr uint16_t kSharedBit = 0x8000;
// A shared segment no larger than a body and its reply.
inline constexpr uint64_t kMaxSegmentBytes = 2 * kMaxBodyBytes + 64;
[[nodiscard]] const char* to_string(MessageType type);

struct Header {
  MessageType type = MessageType::kAck;
  uint32_t sender = 0;
  uint32_t table = 0;
  int64_t clock = 0;
  uint64_t request = 0;
  uint64_t body_bytes = 0;
  bool shared = false;  // the body is in the shared segment
};

using HeaderBytes = std::array<std::byte, kHeaderBytes>;
[[nodiscard]] HeaderBytes encode_header(const Header& header);
// Checks magic, version, type and the body's length (kMaxHandshakeBodyBytes until the peer has
// authenticated). Throws ProtocolError naming the field.
[[nodiscard]] Header decode_header(std::span<const std::byte, kHeaderBytes> bytes,
                                   bool authenticated);

// Decoded request bodies. The spans point into the body buffer, which must be 8-byte aligned.
struct DenseRequest {
  float lr = 0.0f;
  int64_t offset = 0;
  int64_t count = 0;
  std::span<const float> values;  // push only
};
struct SparseRequest {
  float lr = 0.0f;
  std::span<const uint64_t> keys;
  std::span<const float> values;  // push only: keys.size() * dim
};

// Each checks the body's length against its counts (without overflow) and that lr is finite and
// >= 0; throws ProtocolError naming what does not fit.
[[nodiscard]] DenseRequest decode_pull_dense(std::span<const std::byte> body);
[[nodiscard]] DenseRequest decode_push_dense(std::span<const std::byte> body);
[[nodiscard]] SparseRequest decode_pull_sparse(std::span<const std::byte> body);
[[nodiscard]] SparseRequest decode_push_sparse(std::span<const std::byte> body, int64_t dim);

// kShareMemory's size, from 64 bytes to kMaxSegmentBytes.
[[nodiscard]] uint64_t decode_share_memory(std::span<const std::byte> body);
// kSegment's body; the caller checks its size against what it asked for.
[[nodiscard]] SegmentInfo decode_segment(std::span<const std::byte> body);
[[nodiscard]] std::array<std::byte, 32> encode_segment(const SegmentInfo& info);

// Body prefixes, for the sender (values and keys follow as separate buffers).
struct DensePrefix {
  float lr = 0.0f;
  uint32_t zero = 0;
  int64_t offset = 0;
  int64_t count = 0;
};
struct SparsePrefix {
  float lr = 0.0f;
  uint32_t zero = 0;
  uint64_t n = 0;
};

}  // namespace tessera::parallel::ps
