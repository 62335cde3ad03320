#include "tessera/comm/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr resolve(const std::string& host, int port, bool passive, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0) {
    *error = detail::concat("cannot resolve host '", host, "': ", gai_strerror(rc));
    return nullptr;
  }
  return AddrInfoPtr(result);
}

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1 << 30));
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error (errno set).
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int rc = ::poll(&pfd, 1, milliseconds_until(deadline));
    if (rc < 0 && errno == EINTR) continue;
    return rc;
  }
}

void set_nonblocking_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

Socket::~Socket() { reset(); }

int Socket::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Socket::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string errno_message(int errno_value) {
  char buffer[256];
  // GNU strerror_r returns the message pointer (which may or may not be `buffer`).
  const char* message = strerror_r(errno_value, buffer, sizeof(buffer));
  return message;
}

std::string format_address(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return detail::concat("[", host, "]:", port);
  return detail::concat(host, ":", port);
}

std::string peer_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), service,
                  sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "unknown peer";
  }
  return format_address(host, std::atoi(service));
}

Socket listen_tcp(const std::string& host, int port, int* bound_port) {
  const std::string where = format_address(host, port);
  std::string error;
  AddrInfoPtr info = resolve(host, port, /*passive=*/true, &error);
  if (!info) throw CommError(detail::concat("store server: cannot listen on ", where, ": ", error));
  for (addrinfo* ai = info.get(); ai != nullptr; ai = ai->ai_next) {
    Socket socket(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!socket.valid()) {
      error = errno_message(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(socket.fd(), ai->ai_addr, ai->ai_addrlen) != 0 ||
        ::listen(socket.fd(), SOMAXCONN) != 0) {
      error = errno_message(errno);
      continue;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&addr), &len);
    *bound_port = addr.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    set_nonblocking_cloexec(socket.fd());
    return socket;
  }
  throw CommError(detail::concat("store server: cannot listen on ", where, ": ", error));
}

Socket connect_tcp(const std::string& host, int port, Clock::time_point deadline,
                   std::string* error) {
  AddrInfoPtr info = resolve(host, port, /*passive=*/false, error);
  if (!info) return Socket();
  for (addrinfo* ai = info.get(); ai != nullptr; ai = ai->ai_next) {
    Socket socket(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!socket.valid()) {
      *error = errno_message(errno);
      continue;
    }
    set_nonblocking_cloexec(socket.fd());
    int rc = ::connect(socket.fd(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      rc = wait_for(socket.fd(), POLLOUT, deadline);
      if (rc == 0) {
        *error = "connection attempt timed out";
        continue;
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (rc < 0) so_error = errno;
      if (so_error != 0) {
        *error = errno_message(so_error);
        continue;
      }
    } else if (rc != 0) {
      *error = errno_message(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return socket;
  }
  return Socket();
}

IoStatus send_all(int fd, const void* data, std::size_t size, Clock::time_point deadline,
                  std::string* error) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, bytes, size, MSG_NOSIGNAL);
    if (n > 0) {
      bytes += n;
      size -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int rc = wait_for(fd, POLLOUT, deadline);
      if (rc == 0) return IoStatus::kTimeout;
      if (rc < 0) {
        *error = errno_message(errno);
        return IoStatus::kError;
      }
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return IoStatus::kClosed;
    *error = errno_message(errno);
    return IoStatus::kError;
  }
  return IoStatus::kOk;
}

IoStatus recv_all(int fd, void* data, std::size_t size, Clock::time_point deadline,
                  std::string* error) {
  auto* bytes = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, bytes, size, 0);
    if (n > 0) {
      bytes += n;
      size -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return IoStatus::kClosed;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const int rc = wait_for(fd, POLLIN, deadline);
      if (rc == 0) return IoStatus::kTimeout;
      if (rc < 0) {
        *error = errno_message(errno);
        return IoStatus::kError;
      }
      continue;
    }
    if (errno == ECONNRESET) return IoStatus::kClosed;
    *error = errno_message(errno);
    return IoStatus::kError;
  }
  return IoStatus::kOk;
}

}  // namespace tessera::comm
