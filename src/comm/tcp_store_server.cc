#include "tessera/comm/tcp_store_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store_protocol.h"
#include "store_service.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/socket.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

// Bytes read from one connection per wake-up, so that one fast sender cannot starve the others.
constexpr std::size_t kReadBudget = std::size_t{1} << 20;
// Connections accepted per wake-up: a flood of new connections cannot starve the open ones.
constexpr int kAcceptBurst = 64;
// How long the listening socket is left alone after accept() found no file descriptor free: it
// stays readable meanwhile, and polling it would spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

bool out_of_descriptors(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

struct Connection {
  Socket socket;
  StoreService::SessionId id = 0;
  bool gone = false;  // closed or reset by the peer
};

// The poll loop: moves bytes between the sockets and the StoreService.
class Server {
 public:
  Server(const TcpStoreServerOptions& options, std::string address, int listen_fd, int wake_fd,
         const std::atomic<bool>& stopping)
      : address_(std::move(address)),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        stopping_(stopping),
        service_(options.token, [this](const std::string& line) { log(line); }) {}

  void run() {
    while (!stopping_.load()) {
      std::vector<pollfd> fds;
      fds.push_back({wake_fd_, POLLIN, 0});
      // A negative descriptor is skipped by poll: the listening socket rests while out of fds.
      fds.push_back({accepting(Clock::now()) ? listen_fd_ : -1, POLLIN, 0});
      for (const Connection& c : connections_) {
        const bool open = service_.state(c.id) == StoreService::SessionState::kOpen;
        short events = open ? POLLIN : 0;
        if (!service_.output(c.id).empty()) events |= POLLOUT;
        fds.push_back({c.socket.fd(), events, 0});
      }
      const int rc = ::poll(fds.data(), fds.size(), poll_timeout_ms());
      if (rc < 0 && errno != EINTR) {
        log(detail::concat("poll failed: ", errno_message(errno), "; serving stops"));
        return;
      }
      if (stopping_.load()) return;
      const auto now = Clock::now();
      for (std::size_t i = 0; rc > 0 && i + 2 < fds.size(); ++i) {
        const short revents = fds[i + 2].revents;
        if (revents & (POLLIN | POLLHUP | POLLERR)) read_from(connections_[i], now);
      }
      if (rc > 0 && (fds[1].revents & POLLIN)) accept_some(now);
      service_.expire(now);
      sweep();
    }
  }

 private:
  void log(const std::string& line) const {
    std::fprintf(stderr, "tessera store at %s: %s\n", address_.c_str(), line.c_str());
  }

  bool accepting(Clock::time_point now) const { return now >= accept_resume_; }

  int poll_timeout_ms() const {
    std::optional<Clock::time_point> next = service_.next_deadline();
    if (!accepting(Clock::now())) next = next ? std::min(*next, accept_resume_) : accept_resume_;
    if (!next) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30));
  }

  void accept_some(Clock::time_point now) {
    for (int n = 0; n < kAcceptBurst; ++n) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int error = errno;
        if (error == EINTR || error == ECONNABORTED) continue;
        if (out_of_descriptors(error)) {
          rest_listener(error, now);
        } else if (error == EAGAIN || error == EWOULDBLOCK) {
          starved_ = false;  // the backlog is empty: a shortage from now on is a new one
        }
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Connection c;
      c.socket = Socket(fd);
      try {
        c.id = service_.open(peer_address(fd), now);
      } catch (const CommError& e) {
        log(detail::concat("closed a new connection: ", e.what()));
        continue;
      }
      connections_.push_back(std::move(c));
    }
  }

  // Out of file descriptors: the open connections are still served, and new ones wait in the
  // listen backlog until some are closed.
  void rest_listener(int error, Clock::time_point now) {
    accept_resume_ = now + kAcceptBackoff;
    if (starved_) return;
    starved_ = true;
    log(detail::concat("cannot accept connections: ", errno_message(error), "; still serving the ",
                       connections_.size(),
                       " open ones, and accepting again once descriptors "
                       "are free"));
  }

  void read_from(Connection& c, Clock::time_point now) {
    char buffer[65536];
    for (std::size_t total = 0; total < kReadBudget;) {
      const ssize_t n = ::recv(c.socket.fd(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        service_.receive(c.id, std::string_view(buffer, static_cast<std::size_t>(n)), now);
        total += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      c.gone = true;
      return;
    }
  }

  // Sends what can be sent now; false when the connection failed.
  bool flush(Connection& c) {
    std::string& out = service_.output(c.id);
    while (!out.empty()) {
      const ssize_t n = ::send(c.socket.fd(), out.data(), out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out.erase(0, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
  }

  // Sends every session's output (a set may have answered waits on other connections) and closes
  // what the service or the peer ended.
  void sweep() {
    std::erase_if(connections_, [&](Connection& c) {
      using State = StoreService::SessionState;
      const bool done = c.gone || service_.state(c.id) == State::kClosed || !flush(c) ||
                        (service_.state(c.id) == State::kClosing && service_.output(c.id).empty());
      if (done) service_.close(c.id);
      return done;
    });
  }

  const std::string address_;
  const int listen_fd_;
  const int wake_fd_;
  const std::atomic<bool>& stopping_;
  StoreService service_;
  std::vector<Connection> connections_;
  Clock::time_point accept_resume_;
  // accept() ran out of descriptors since the backlog was last empty, and it was logged.
  bool starved_ = false;
};

bool is_wildcard(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "[::]" || host == "*";
}

}  // namespace

TcpStoreServer::TcpStoreServer(TcpStoreServerOptions options) : options_(std::move(options)) {
  if (options_.host.empty()) {
    throw ValueError(
        "TcpStoreServer: empty host; pass the address to listen on (127.0.0.1 on one host)");
  }
  if (options_.token.empty()) {
    throw ValueError("TcpStoreServer: empty job token; every store needs one (make_job_token())");
  }
  if (options_.port < 0 || options_.port > 65535) {
    throw ValueError(
        detail::concat("TcpStoreServer: port ", options_.port, " is not in [0, 65535]"));
  }
  if (options_.host == "*") options_.host = "0.0.0.0";
  if (is_wildcard(options_.host)) {
    std::fprintf(stderr,
                 "tessera store: listening on every interface (%s) as requested; any host that "
                 "reaches this port can attempt the handshake\n",
                 options_.host.c_str());
  }
  Socket listener = listen_tcp(options_.host, options_.port, &port_);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw CommError(detail::concat("TcpStoreServer: pipe2: ", errno_message(errno)));
  }
  wake_read_fd_ = pipe_fds[0];
  wake_write_fd_ = pipe_fds[1];
  listen_fd_ = listener.release();
  thread_ = std::thread([this] { serve(); });
}

TcpStoreServer::~TcpStoreServer() { stop(); }

std::string TcpStoreServer::address() const { return format_address(options_.host, port_); }

void TcpStoreServer::stop() noexcept {
  if (thread_.joinable()) {
    stopping_.store(true);
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_write_fd_, &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_read_fd_, &wake_write_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void TcpStoreServer::serve() noexcept {
  pthread_setname_np(pthread_self(), "tessera-store");
  try {
    Server server(options_, address(), listen_fd_, wake_read_fd_, stopping_);
    server.run();
  } catch (const std::exception& e) {
    // Only allocation failure or a broken random source can get here; the clients see their
    // connections close.
    std::fprintf(stderr, "tessera store at %s: stopped: %s\n", address().c_str(), e.what());
  }
}

}  // namespace tessera::comm
