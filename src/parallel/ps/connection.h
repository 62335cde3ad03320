#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "message.h"
#include "tessera/comm/socket.h"

// One parameter-server connection: messages framed as message.h says, every read and write
// bounded by a deadline, and the job-token handshake both sides run before anything else.
namespace tessera::parallel::ps {

using Clock = std::chrono::steady_clock;

class Connection {
 public:
  Connection(comm::Socket socket, std::string peer);

  [[nodiscard]] const std::string& peer() const { return peer_; }

  // Sends the header and then the body's parts, whose sizes must add up to header.body_bytes.
  void send(const Header& header, std::span<const std::span<const std::byte>> parts,
            Clock::time_point deadline);
  void send(const Header& header, std::initializer_list<std::span<const std::byte>> parts,
            Clock::time_point deadline) {
    send(header, std::span(parts.begin(), parts.size()), deadline);
  }
  // The next header. ProtocolError when it does not decode; TimeoutError naming `waiting_for` at
  // the deadline; CommError when the peer goes away.
  [[nodiscard]] Header receive_header(Clock::time_point deadline, bool authenticated,
                                      std::string_view waiting_for);
  void receive(std::span<std::byte> out, Clock::time_point deadline, std::string_view waiting_for);
  // Wakes a reader blocked on this connection (it then sees the peer gone).
  void shutdown();

 private:
  comm::Socket socket_;
  std::string peer_;
};

// A message body, 8-byte aligned so that decoded keys and values can point into it. It only
// grows, and never clears what it holds: every byte handed out is received into first.
class BodyBuffer {
 public:
  std::span<std::byte> resize(uint64_t bytes);

 private:
  std::unique_ptr<uint64_t[]> words_;
  uint64_t capacity_ = 0;  // in words
};

template <typename T>
[[nodiscard]] std::span<const std::byte> bytes_of(std::span<const T> values) {
  return std::as_bytes(values);
}
template <typename T>
[[nodiscard]] std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}

// The worker's side: answers the server's challenge with a proof of the token, and checks the
// server's proof in turn (a server without the token is refused, by name). Throws CommError.
void handshake_as_worker(Connection& connection, std::string_view token, uint32_t worker,
                         Clock::time_point deadline);
// The server's side: challenges the peer and checks its proof; returns the worker index the peer
// claims, which must be below `workers`. Throws CommError after answering kRefused.
[[nodiscard]] uint32_t handshake_as_server(Connection& connection, std::string_view token,
                                           uint32_t workers, Clock::time_point deadline);

}  // namespace tessera::parallel::ps
