// The store server's handling of a connection's raw bytes (StoreService, no sockets): the
// handshake, and, for a session the harness authenticates with the right token, request frames.
//
// Input: a mode byte, then steps. Mode bit 0: session A is authenticated first; bit 1: session B
// is opened (and authenticated with bit 0) too, so that one session's sets answer the other's
// waits. Each step is a control byte (bit 0: to B instead of A; bit 1: the clock moves on first;
// bits 2-7: count - 1) and then `count` bytes for that session.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "comm/store_protocol.h"
#include "comm/store_service.h"
#include "tessera/comm/token_auth.h"

namespace {

using tessera::comm::StoreService;

constexpr std::string_view kToken = "fuzz-token-0123456789abcdef";

// Takes one frame's body off the front of `bytes`, or returns false while it is incomplete.
bool take_frame(std::string& bytes, std::string* body) {
  if (bytes.size() < 4) return false;
  const std::uint32_t length = tessera::comm::frame_length(bytes.data());
  if (bytes.size() - 4 < length) return false;
  *body = bytes.substr(4, length);
  bytes.erase(0, 4 + static_cast<std::size_t>(length));
  return true;
}

// What the server sends never holds the token.
void check(StoreService& service, StoreService::SessionId id) {
  std::string& out = service.output(id);
  if (out.find(kToken) != std::string::npos) __builtin_trap();
  out.clear();
}

// Answers the session's challenge as a client holding the token does.
void authenticate(StoreService& service, StoreService::SessionId id,
                  StoreService::Clock::time_point now) {
  std::string out = service.output(id);
  service.output(id).clear();
  std::string challenge;
  if (!take_frame(out, &challenge)) __builtin_trap();
  tessera::comm::FrameReader reader(challenge);
  (void)reader.u8();
  (void)reader.str();
  const std::string server_nonce = reader.str().value_or("");
  const std::string client_nonce = tessera::comm::random_nonce();
  service.receive(id,
                  tessera::comm::FrameWriter()
                      .u8(static_cast<std::uint8_t>(tessera::comm::StoreCommand::kHandshake))
                      .str(tessera::comm::kStoreMagic)
                      .str(client_nonce)
                      .str(tessera::comm::client_proof(kToken, server_nonce, client_nonce))
                      .finish(),
                  now);
  std::string verdict;
  std::string reply = service.output(id);
  if (!take_frame(reply, &verdict) || verdict.empty() || verdict[0] != 0) __builtin_trap();
  service.output(id).clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  auto now = StoreService::Clock::time_point() + std::chrono::hours(1);
  StoreService service(std::string(kToken), [](const std::string&) {});
  const StoreService::SessionId a = service.open("fuzz:1", now);
  const bool two = (mode & 2) != 0;
  const StoreService::SessionId b = two ? service.open("fuzz:2", now) : a;
  if ((mode & 1) != 0) {
    authenticate(service, a, now);
    if (two) authenticate(service, b, now);
  }
  check(service, a);
  check(service, b);
  for (std::size_t at = 1; at < size;) {
    const std::uint8_t control = data[at++];
    const StoreService::SessionId id = (control & 1) != 0 ? b : a;
    if ((control & 2) != 0) {
      now += std::chrono::seconds(1);
      service.expire(now);
    }
    const std::size_t count = std::min<std::size_t>((control >> 2) + 1u, size - at);
    service.receive(id, std::string_view(reinterpret_cast<const char*>(data + at), count), now);
    at += count;
    check(service, a);
    check(service, b);
  }
  // Whatever the clients asked for, expire() answers every wait that is due, and what is left
  // (waits queued behind them, parked now) is due within kMaxTimeout.
  const auto later = now + tessera::comm::kMaxTimeout + std::chrono::milliseconds(1);
  service.expire(later);
  const auto next = service.next_deadline();
  if (next && (*next <= later || *next > later + tessera::comm::kMaxTimeout)) __builtin_trap();
  check(service, a);
  check(service, b);
  return 0;
}
