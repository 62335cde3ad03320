#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/timeouts.h"

// The TcpStore wire protocol, shared by client and server. A frame is a 4-byte little-endian body
// length, then the body. A request body is a StoreCommand byte then its fields; a reply body is a
// StoreStatus byte then its fields. Integers are little-endian; a string is a u32 length then its
// bytes.
//
// Every connection starts with a mutual challenge-response over the job token (token_auth.h); the
// token itself never crosses the wire, and nothing else is served before it succeeds:
//
//   server, on accept: kChallenge str magic, str server_nonce
//   kHandshake  str magic, str client_nonce, str client_proof  -> kOk str server_proof | kRefused
//
// The client checks the server's proof before it sends a request. Then:
//
//   kSet        str key, str value                      -> kOk
//   kGet        str key, i64 timeout_ms                 -> kOk str value | kTimeout
//   kAdd        str key, i64 delta                      -> kOk i64 value | kError str message
//   kCompareSet str key, str expected, str desired      -> kOk str value
//   kCheck      u32 n, n * str key                      -> kOk u8 all_set
//   kWait       u32 n, n * str key, i64 timeout_ms      -> kOk | kTimeout u32 n, n * str missing
//   kRemove     str key                                 -> kOk u8 was_set
//
// A timeout_ms outside [0, kMaxTimeout] is clamped into it (clamp_wait).
namespace tessera::comm {

// The protocol and its version: a peer with another version is refused by name.
inline constexpr std::string_view kStoreMagic = "tessera-store-2";
inline constexpr std::string_view kStoreMagicFamily = "tessera-store-";
// Largest frame before the handshake: a stranger cannot make the server allocate much.
inline constexpr std::uint32_t kMaxHandshakeFrame = 4096;
inline constexpr std::uint32_t kMaxFrame = 1u << 30;
// From accept to a verified proof. Not extended by anything the client sends: a peer that
// trickles bytes is dropped as surely as a silent one.
inline constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

// A client-supplied wait in milliseconds, as the server honours it: negative counts as 0 (answer
// at once), and nothing waits longer than kMaxTimeout.
[[nodiscard]] inline std::chrono::milliseconds clamp_wait(std::int64_t ms) {
  return std::chrono::milliseconds(std::clamp<std::int64_t>(ms, 0, kMaxTimeout.count()));
}

enum class StoreCommand : std::uint8_t {
  kHandshake = 1,
  kSet = 2,
  kGet = 3,
  kAdd = 4,
  kCompareSet = 5,
  kCheck = 6,
  kWait = 7,
  kRemove = 8,
};

enum class StoreStatus : std::uint8_t {
  kOk = 0,
  kTimeout = 1,
  kRefused = 2,
  kError = 3,
  kChallenge = 4,
};

// Builds one frame: the length prefix is filled in by finish().
class FrameWriter {
 public:
  FrameWriter() : bytes_(4, '\0') {}
  FrameWriter& u8(std::uint8_t value) {
    bytes_.push_back(static_cast<char>(value));
    return *this;
  }
  FrameWriter& u32(std::uint32_t value) {
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
    return *this;
  }
  FrameWriter& i64(std::int64_t value) {
    const auto bits = static_cast<std::uint64_t>(value);
    for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<char>((bits >> (8 * i)) & 0xffu));
    return *this;
  }
  FrameWriter& str(std::string_view value) {
    u32(static_cast<std::uint32_t>(value.size()));
    bytes_.append(value);
    return *this;
  }
  FrameWriter& strs(const std::vector<std::string>& values) {
    u32(static_cast<std::uint32_t>(values.size()));
    for (const auto& v : values) str(v);
    return *this;
  }
  // Completes the frame; the writer is empty afterwards.
  [[nodiscard]] std::string finish() {
    const auto length = static_cast<std::uint32_t>(bytes_.size() - 4);
    for (int i = 0; i < 4; ++i) bytes_[i] = static_cast<char>((length >> (8 * i)) & 0xffu);
    return std::move(bytes_);
  }

 private:
  std::string bytes_;
};

// Reads the fields of one frame body; each read returns nullopt once the body is exhausted or
// malformed (and every later read does too).
class FrameReader {
 public:
  explicit FrameReader(std::string_view body) : body_(body) {}
  std::optional<std::uint8_t> u8() {
    if (!take(1)) return std::nullopt;
    return static_cast<std::uint8_t>(body_[pos_ - 1]);
  }
  std::optional<std::uint32_t> u32() {
    if (!take(4)) return std::nullopt;
    return static_cast<std::uint32_t>(decode(4));
  }
  std::optional<std::int64_t> i64() {
    if (!take(8)) return std::nullopt;
    return static_cast<std::int64_t>(decode(8));
  }
  std::optional<std::string> str() {
    auto size = u32();
    if (!size || !take(*size)) return std::nullopt;
    return std::string(body_.substr(pos_ - *size, *size));
  }
  std::optional<std::vector<std::string>> strs() {
    auto n = u32();
    if (!n || *n > body_.size()) return std::nullopt;
    std::vector<std::string> values;
    values.reserve(*n);
    for (std::uint32_t i = 0; i < *n; ++i) {
      auto s = str();
      if (!s) return std::nullopt;
      values.push_back(std::move(*s));
    }
    return values;
  }
  [[nodiscard]] bool at_end() const { return ok_ && pos_ == body_.size(); }

 private:
  bool take(std::size_t n) {
    if (!ok_ || body_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::uint64_t decode(int n) const {
    std::uint64_t value = 0;
    for (int i = 0; i < n; ++i) {
      value |= static_cast<std::uint64_t>(static_cast<unsigned char>(body_[pos_ - n + i]))
               << (8 * i);
    }
    return value;
  }

  std::string_view body_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Decodes the 4-byte length prefix at `bytes`.
inline std::uint32_t frame_length(const char* bytes) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return value;
}

}  // namespace tessera::comm
