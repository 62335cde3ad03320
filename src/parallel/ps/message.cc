#include "message.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "tessera/core/error.h"

namespace tessera::parallel::ps {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");
static_assert(sizeof(DensePrefix) == 24 && sizeof(SparsePrefix) == 16);

namespace {

template <typename T>
T load(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

template <typename T>
void store(std::byte* at, T value) {
  std::memcpy(at, &value, sizeof(T));
}

void check_lr(float lr, MessageType type) {
  if (!std::isfinite(lr) || lr < 0.0f) {
    throw ProtocolError(
        detail::concat(to_string(type), ": learning rate ", lr, " is not finite and >= 0"));
  }
}

void check_aligned(std::span<const std::byte> body) {
  if (reinterpret_cast<uintptr_t>(body.data()) % alignof(uint64_t) != 0) {
    throw InternalError("ps: message body buffer is not 8-byte aligned");
  }
}

// count elements of `size` bytes after `prefix` bytes must be exactly the body.
void check_length(std::span<const std::byte> body, uint64_t prefix, uint64_t count, uint64_t size,
                  MessageType type, const char* what) {
  const uint64_t room = body.size() - prefix;
  if (size != 0 && count > room / size) {
    throw ProtocolError(detail::concat(to_string(type), ": ", what, " ", count,
                                       " need more than the ", room,
                                       " bytes the body has after its prefix"));
  }
  if (count * size != room) {
    throw ProtocolError(detail::concat(to_string(type), ": body is ", body.size(), " bytes, but ",
                                       what, " ", count, " make ", prefix + count * size));
  }
}

void check_prefix(std::span<const std::byte> body, uint64_t prefix, MessageType type) {
  if (body.size() < prefix) {
    throw ProtocolError(detail::concat(to_string(type), ": body is ", body.size(),
                                       " bytes, shorter than its ", prefix, "-byte prefix"));
  }
  check_aligned(body);
}

DenseRequest decode_dense(std::span<const std::byte> body, bool push) {
  const MessageType type = push ? MessageType::kPushDense : MessageType::kPullDense;
  const uint64_t prefix = push ? sizeof(DensePrefix) : 2 * sizeof(int64_t);
  check_prefix(body, prefix, type);
  DenseRequest r;
  const std::byte* at = body.data();
  if (push) {
    r.lr = load<float>(at);
    check_lr(r.lr, type);
    at += 8;
  }
  r.offset = load<int64_t>(at);
  r.count = load<int64_t>(at + 8);
  if (r.offset < 0 || r.count < 0) {
    throw ProtocolError(detail::concat(to_string(type), ": offset ", r.offset, " and count ",
                                       r.count, " must be >= 0"));
  }
  check_length(body, prefix, push ? static_cast<uint64_t>(r.count) : 0, push ? 4 : 0, type,
               "count");
  if (push) {
    r.values = {reinterpret_cast<const float*>(body.data() + prefix), static_cast<size_t>(r.count)};
  }
  return r;
}

SparseRequest decode_sparse(std::span<const std::byte> body, bool push, int64_t dim) {
  const MessageType type = push ? MessageType::kPushSparse : MessageType::kPullSparse;
  const uint64_t prefix = push ? sizeof(SparsePrefix) : sizeof(uint64_t);
  check_prefix(body, prefix, type);
  SparseRequest r;
  uint64_t n = 0;
  if (push) {
    r.lr = load<float>(body.data());
    check_lr(r.lr, type);
    n = load<uint64_t>(body.data() + 8);
  } else {
    n = load<uint64_t>(body.data());
  }
  // Each key brings 8 bytes and, in a push, dim floats.
  const uint64_t per_key = 8 + (push ? 4 * static_cast<uint64_t>(dim) : 0);
  check_length(body, prefix, n, per_key, type, "keys");
  const auto* keys = reinterpret_cast<const uint64_t*>(body.data() + prefix);
  r.keys = {keys, static_cast<size_t>(n)};
  if (push) {
    r.values = {reinterpret_cast<const float*>(keys + n), static_cast<size_t>(n * dim)};
  }
  return r;
}

}  // namespace

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::kChallenge:
      return "challenge";
    case MessageType::kHello:
      return "hello";
    case MessageType::kWelcome:
      return "welcome";
    case MessageType::kRefused:
      return "refused";
    case MessageType::kPullDense:
      return "pull_dense";
    case MessageType::kPushDense:
      return "push_dense";
    case MessageType::kPullSparse:
      return "pull_sparse";
    case MessageType::kPushSparse:
      return "push_sparse";
    case MessageType::kValues:
      return "values";
    case MessageType::kAck:
      return "ack";
    case MessageType::kError:
      return "error";
    case MessageType::kHeartbeat:
      return "heartbeat";
    case MessageType::kBye:
      return "bye";
    case MessageType::kSteps:
      return "steps";
    case MessageType::kCheckpoint:
      return "checkpoint";
    case MessageType::kShareMemory:
      return "share_memory";
    case MessageType::kSegment:
      return "segment";
    case MessageType::kMapDense:
      return "map_dense";
    case MessageType::kPullMapped:
      return "pull_mapped";
  }
  return "unknown";
}

HeaderBytes encode_header(const Header& h) {
  HeaderBytes out{};
  std::byte* at = out.data();
  store<uint32_t>(at, kMagic);
  store<uint16_t>(at + 4, kVersion);
  store<uint16_t>(
      at + 6, static_cast<uint16_t>(static_cast<uint16_t>(h.type) | (h.shared ? kSharedBit : 0)));
  store<uint32_t>(at + 8, h.sender);
  store<uint32_t>(at + 12, h.table);
  store<int64_t>(at + 16, h.clock);
  store<uint64_t>(at + 24, h.request);
  store<uint64_t>(at + 32, h.body_bytes);
  return out;
}

Header decode_header(std::span<const std::byte, kHeaderBytes> bytes, bool authenticated) {
  const std::byte* at = bytes.data();
  if (const auto magic = load<uint32_t>(at); magic != kMagic) {
    throw ProtocolError(
        detail::concat("not a tessera parameter-server message (magic ", magic, ")"));
  }
  if (const auto version = load<uint16_t>(at + 4); version != kVersion) {
    throw ProtocolError(
        detail::concat("protocol version ", version, ", this build speaks ", kVersion));
  }
  const auto wire_type = load<uint16_t>(at + 6);
  const auto type = static_cast<uint16_t>(wire_type & ~kSharedBit);
  if (type < static_cast<uint16_t>(MessageType::kChallenge) ||
      type > static_cast<uint16_t>(MessageType::kPullMapped)) {
    throw ProtocolError(detail::concat("unknown message type ", type));
  }
  Header h;
  h.type = static_cast<MessageType>(type);
  h.shared = (wire_type & kSharedBit) != 0;
  h.sender = load<uint32_t>(at + 8);
  h.table = load<uint32_t>(at + 12);
  h.clock = load<int64_t>(at + 16);
  h.request = load<uint64_t>(at + 24);
  h.body_bytes = load<uint64_t>(at + 32);
  const uint64_t limit = authenticated ? kMaxBodyBytes : kMaxHandshakeBodyBytes;
  if (h.body_bytes > limit) {
    throw ProtocolError(detail::concat(to_string(h.type), ": body of ", h.body_bytes,
                                       " bytes is over the limit of ", limit,
                                       authenticated ? "" : " before the handshake"));
  }
  if (h.shared && !authenticated) {
    throw ProtocolError(detail::concat(to_string(h.type), ": a shared body before the handshake"));
  }
  if (h.clock < 0 || h.clock > kMaxClock) {
    throw ProtocolError(
        detail::concat(to_string(h.type), ": clock ", h.clock, " is outside [0, 2^62]"));
  }
  return h;
}

DenseRequest decode_pull_dense(std::span<const std::byte> body) {
  return decode_dense(body, false);
}
DenseRequest decode_push_dense(std::span<const std::byte> body) { return decode_dense(body, true); }
SparseRequest decode_pull_sparse(std::span<const std::byte> body) {
  return decode_sparse(body, false, 0);
}
SparseRequest decode_push_sparse(std::span<const std::byte> body, int64_t dim) {
  return decode_sparse(body, true, dim);
}

uint64_t decode_share_memory(std::span<const std::byte> body) {
  if (body.size() != 8) {
    throw ProtocolError(detail::concat("share_memory: body of ", body.size(), " bytes, not 8"));
  }
  const auto bytes = load<uint64_t>(body.data());
  if (bytes < 64 || bytes > kMaxSegmentBytes) {
    throw ProtocolError(
        detail::concat("share_memory: ", bytes, " bytes is outside [64, ", kMaxSegmentBytes, "]"));
  }
  return bytes;
}

std::array<std::byte, 32> encode_segment(const SegmentInfo& info) {
  std::array<std::byte, 32> out{};
  store<uint32_t>(out.data(), info.pid);
  store<int32_t>(out.data() + 4, info.fd);
  store<uint64_t>(out.data() + 8, info.bytes);
  std::memcpy(out.data() + 16, info.nonce.data(), kSegmentNonceBytes);
  return out;
}

SegmentInfo decode_segment(std::span<const std::byte> body) {
  if (body.size() != 32) {
    throw ProtocolError(detail::concat("segment: body of ", body.size(), " bytes, not 32"));
  }
  SegmentInfo info;
  info.pid = load<uint32_t>(body.data());
  info.fd = load<int32_t>(body.data() + 4);
  info.bytes = load<uint64_t>(body.data() + 8);
  std::memcpy(info.nonce.data(), body.data() + 16, kSegmentNonceBytes);
  if (info.fd < 0 || info.bytes > (uint64_t{1} << 50)) {
    throw ProtocolError(
        detail::concat("segment: descriptor ", info.fd, " of ", info.bytes, " bytes"));
  }
  return info;
}

}  // namespace tessera::parallel::ps
