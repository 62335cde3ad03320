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
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "socket.h"
#include "store_protocol.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

// A client that connects and says nothing is dropped after this long.
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Compares every byte whatever the first difference, so timing does not leak the token.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::optional<std::int64_t> parse_int(const std::string& text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// A blocked kGet or kWait, answered when its keys are set or its deadline passes.
struct Pending {
  StoreCommand command;
  std::vector<std::string> keys;
  Clock::time_point deadline;
};

struct Connection {
  Socket socket;
  std::string peer;
  bool authenticated = false;
  bool closing = false;  // close once `out` is flushed
  bool dead = false;
  Clock::time_point handshake_deadline;
  std::string in;
  std::string out;
  std::optional<Pending> pending;
};

class Server {
 public:
  Server(const TcpStoreServerOptions& options, std::string address, int listen_fd, int wake_fd,
         const std::atomic<bool>& stopping)
      : options_(options),
        address_(std::move(address)),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        stopping_(stopping) {}

  void run() {
    while (!stopping_.load()) {
      std::vector<pollfd> fds;
      fds.push_back({wake_fd_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const auto& c : connections_) {
        short events = c->closing ? 0 : POLLIN;
        if (!c->out.empty()) events |= POLLOUT;
        fds.push_back({c->socket.fd(), events, 0});
      }
      const int rc = ::poll(fds.data(), fds.size(), poll_timeout_ms());
      if (rc < 0 && errno != EINTR) {
        std::fprintf(stderr, "tessera store at %s: poll failed: %s; serving stops\n",
                     address_.c_str(), errno_message(errno).c_str());
        return;
      }
      if (stopping_.load()) return;
      if (rc > 0) {
        if (fds[1].revents & POLLIN) accept_all();
        for (std::size_t i = 0; i + 2 < fds.size() && i < connections_.size(); ++i) {
          const short revents = fds[i + 2].revents;
          Connection& c = *connections_[i];
          if (revents & (POLLIN | POLLHUP | POLLERR)) read_from(c);
          if (revents & POLLOUT) flush(c);
        }
      }
      serve_ready();
      expire(Clock::now());
      std::erase_if(connections_, [](const auto& c) { return c->dead; });
    }
  }

 private:
  int poll_timeout_ms() const {
    std::optional<Clock::time_point> next;
    for (const auto& c : connections_) {
      if (!c->authenticated)
        next = next ? std::min(*next, c->handshake_deadline) : c->handshake_deadline;
      if (c->pending) next = next ? std::min(*next, c->pending->deadline) : c->pending->deadline;
    }
    if (!next) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30));
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN (nothing more) or a transient error: poll again
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Connection>();
      c->socket = Socket(fd);
      c->peer = peer_address(fd);
      c->handshake_deadline = Clock::now() + kHandshakeTimeout;
      connections_.push_back(std::move(c));
    }
  }

  void read_from(Connection& c) {
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(c.socket.fd(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        c.in.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      c.dead = true;  // closed by the peer, or reset
      return;
    }
  }

  void flush(Connection& c) {
    while (!c.out.empty()) {
      const ssize_t n = ::send(c.socket.fd(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      c.dead = true;
      return;
    }
    if (c.closing) c.dead = true;
  }

  void reply(Connection& c, std::string frame) {
    c.out += frame;
    flush(c);
  }

  // Serves buffered requests and blocked waits until nothing more can progress: a set may
  // release a wait whose connection has more requests queued behind it.
  void serve_ready() {
    bool progress = true;
    while (progress) {
      progress = false;
      for (auto& c : connections_) {
        if (c->dead || c->closing) continue;
        if (c->pending && ready(*c->pending)) {
          answer_pending(*c);
          progress = true;
        }
        while (!c->dead && !c->closing && !c->pending && take_frame(*c)) progress = true;
      }
    }
  }

  // Handles one complete frame from c.in, if there is one.
  bool take_frame(Connection& c) {
    if (c.in.size() < 4) return false;
    const std::uint32_t length = frame_length(c.in.data());
    const std::uint32_t limit = c.authenticated ? kMaxFrame : kMaxHandshakeFrame;
    if (length > limit) {
      if (!c.authenticated) {
        refuse(c, "oversized handshake");
      } else {
        std::fprintf(stderr, "tessera store at %s: dropped %s: %u-byte frame exceeds the limit\n",
                     address_.c_str(), c.peer.c_str(), length);
        c.dead = true;
      }
      return false;
    }
    if (c.in.size() < 4 + static_cast<std::size_t>(length)) return false;
    const std::string body = c.in.substr(4, length);
    c.in.erase(0, 4 + static_cast<std::size_t>(length));
    if (!c.authenticated) {
      handshake(c, body);
    } else {
      handle(c, body);
    }
    return true;
  }

  void refuse(Connection& c, const char* why) {
    std::fprintf(stderr, "tessera store at %s: refused a connection from %s: %s\n",
                 address_.c_str(), c.peer.c_str(), why);
    c.in.clear();
    c.closing = true;
    reply(c, FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kRefused)).finish());
  }

  void handshake(Connection& c, const std::string& body) {
    FrameReader reader(body);
    auto command = reader.u8();
    auto magic = reader.str();
    auto token = reader.str();
    if (!command || *command != static_cast<std::uint8_t>(StoreCommand::kHandshake) || !magic ||
        *magic != kStoreMagic || !token || !reader.at_end()) {
      refuse(c, "not a tessera store handshake");
      return;
    }
    if (!constant_time_equal(*token, options_.token)) {
      refuse(c, token->empty() ? "missing job token" : "bad job token");
      return;
    }
    c.authenticated = true;
    reply(c, FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kOk)).finish());
  }

  static std::string ok() {
    return FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kOk)).finish();
  }

  void malformed(Connection& c) {
    std::fprintf(stderr, "tessera store at %s: dropped %s: malformed request\n", address_.c_str(),
                 c.peer.c_str());
    c.dead = true;
  }

  void handle(Connection& c, const std::string& body) {
    FrameReader r(body);
    auto command = r.u8();
    if (!command) return malformed(c);
    switch (static_cast<StoreCommand>(*command)) {
      case StoreCommand::kSet: {
        auto key = r.str();
        auto value = r.str();
        if (!value || !r.at_end()) return malformed(c);
        values_[*key] = std::move(*value);
        return reply(c, ok());
      }
      case StoreCommand::kGet: {
        auto key = r.str();
        auto timeout = r.i64();
        if (!timeout || !r.at_end()) return malformed(c);
        c.pending = Pending{StoreCommand::kGet,
                            {std::move(*key)},
                            Clock::now() + std::chrono::milliseconds(*timeout)};
        if (ready(*c.pending)) answer_pending(c);
        return;
      }
      case StoreCommand::kAdd: {
        auto key = r.str();
        auto delta = r.i64();
        if (!delta || !r.at_end()) return malformed(c);
        std::int64_t current = 0;
        if (auto it = values_.find(*key); it != values_.end()) {
          auto parsed = parse_int(it->second);
          if (!parsed) {
            return reply(c, FrameWriter()
                                .u8(static_cast<std::uint8_t>(StoreStatus::kError))
                                .str(detail::concat("add: key '", *key,
                                                    "' holds a value that is not an integer"))
                                .finish());
          }
          current = *parsed;
        }
        current = static_cast<std::int64_t>(static_cast<std::uint64_t>(current) +
                                            static_cast<std::uint64_t>(*delta));
        values_[*key] = std::to_string(current);
        return reply(
            c, FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kOk)).i64(current).finish());
      }
      case StoreCommand::kCompareSet: {
        auto key = r.str();
        auto expected = r.str();
        auto desired = r.str();
        if (!desired || !r.at_end()) return malformed(c);
        auto it = values_.find(*key);
        if ((it == values_.end() && expected->empty()) ||
            (it != values_.end() && it->second == *expected)) {
          values_[*key] = *desired;
          it = values_.find(*key);
        }
        const std::string current = it == values_.end() ? std::string() : it->second;
        return reply(
            c, FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kOk)).str(current).finish());
      }
      case StoreCommand::kCheck: {
        auto keys = r.strs();
        if (!keys || !r.at_end()) return malformed(c);
        const bool all = std::all_of(keys->begin(), keys->end(),
                                     [&](const auto& k) { return values_.count(k) > 0; });
        return reply(
            c,
            FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kOk)).u8(all ? 1 : 0).finish());
      }
      case StoreCommand::kWait: {
        auto keys = r.strs();
        auto timeout = r.i64();
        if (!timeout || !r.at_end()) return malformed(c);
        c.pending = Pending{StoreCommand::kWait, std::move(*keys),
                            Clock::now() + std::chrono::milliseconds(*timeout)};
        if (ready(*c.pending)) answer_pending(c);
        return;
      }
      case StoreCommand::kRemove: {
        auto key = r.str();
        if (!key || !r.at_end()) return malformed(c);
        const bool erased = values_.erase(*key) > 0;
        return reply(c, FrameWriter()
                            .u8(static_cast<std::uint8_t>(StoreStatus::kOk))
                            .u8(erased ? 1 : 0)
                            .finish());
      }
      case StoreCommand::kHandshake:
        break;
    }
    malformed(c);
  }

  bool ready(const Pending& p) const {
    return std::all_of(p.keys.begin(), p.keys.end(),
                       [&](const auto& k) { return values_.count(k) > 0; });
  }

  void answer_pending(Connection& c) {
    const Pending p = std::move(*c.pending);
    c.pending.reset();
    if (p.command == StoreCommand::kGet) {
      reply(c, FrameWriter()
                   .u8(static_cast<std::uint8_t>(StoreStatus::kOk))
                   .str(values_.at(p.keys[0]))
                   .finish());
    } else {
      reply(c, ok());
    }
  }

  void expire(Clock::time_point now) {
    for (auto& c : connections_) {
      if (c->dead) continue;
      if (!c->authenticated && !c->closing && now >= c->handshake_deadline) {
        std::fprintf(
            stderr, "tessera store at %s: dropped %s: no handshake within %lld s\n",
            address_.c_str(), c->peer.c_str(),
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::seconds>(kHandshakeTimeout).count()));
        c->dead = true;
        continue;
      }
      if (c->pending && now >= c->pending->deadline) {
        std::vector<std::string> missing;
        for (const auto& k : c->pending->keys) {
          if (values_.count(k) == 0) missing.push_back(k);
        }
        c->pending.reset();
        reply(*c, FrameWriter()
                      .u8(static_cast<std::uint8_t>(StoreStatus::kTimeout))
                      .strs(missing)
                      .finish());
      }
    }
    // A timed-out wait may have requests queued behind it.
    serve_ready();
  }

  const TcpStoreServerOptions& options_;
  const std::string address_;
  const int listen_fd_;
  const int wake_fd_;
  const std::atomic<bool>& stopping_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, std::string> values_;
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
                 "reaches this port can try the job token\n",
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
    // Only allocation failure can get here; the clients see their connections close.
    std::fprintf(stderr, "tessera store at %s: stopped: %s\n", address().c_str(), e.what());
  }
}

}  // namespace tessera::comm
