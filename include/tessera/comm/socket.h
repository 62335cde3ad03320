#pragma once

#include <chrono>
#include <cstddef>
#include <string>

// Thin TCP helpers for the store (the Gloo transport has its own). Sockets are non-blocking;
// every blocking helper takes a deadline.
namespace tessera::comm {

using Clock = std::chrono::steady_clock;

// Owns a file descriptor; closes it on destruction. Movable, not copyable.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(other.release()) {}
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

// "host:port", or "[host]:port" when host is an IPv6 address.
[[nodiscard]] std::string format_address(const std::string& host, int port);

// The peer of a connected socket as "address:port"; "unknown peer" when it cannot be read.
[[nodiscard]] std::string peer_address(int fd);

// Binds and listens on host:port (port 0 picks one; *bound_port receives it). Throws CommError
// naming the address when resolution, bind or listen fails.
[[nodiscard]] Socket listen_tcp(const std::string& host, int port, int* bound_port);

// One connection attempt to host:port that gives up at `deadline`. Returns an invalid Socket and
// sets *error to what went wrong (resolution, refusal, timeout) on failure.
[[nodiscard]] Socket connect_tcp(const std::string& host, int port, Clock::time_point deadline,
                                 std::string* error);

enum class IoStatus { kOk, kTimeout, kClosed, kError };

// Writes or reads exactly `size` bytes before `deadline`. kClosed: the peer closed the
// connection; kError: *error says why.
[[nodiscard]] IoStatus send_all(int fd, const void* data, std::size_t size,
                                Clock::time_point deadline, std::string* error);
[[nodiscard]] IoStatus recv_all(int fd, void* data, std::size_t size, Clock::time_point deadline,
                                std::string* error);

// strerror(errno_value) as a std::string, thread-safe.
[[nodiscard]] std::string errno_message(int errno_value);

}  // namespace tessera::comm
