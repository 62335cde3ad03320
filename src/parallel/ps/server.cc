#include "tessera/parallel/ps/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>
#include <mutex>
#include <thread>

#include "connection.h"
#include "server_state.h"
#include "shared_segment.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/socket.h"
#include "tessera/core/atomic_file.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {
namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// How often the accept loop looks at the stop flag.
constexpr int kAcceptPollMs = 100;

std::span<const std::byte> as_bytes(const std::string& text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, const std::vector<TableSpec>& tables,
       const std::map<uint32_t, std::vector<float>>& dense_initial)
      : options_(std::move(options)), state_(options_, tables, dense_initial) {
    if (options_.token.empty()) throw ValueError("ps::Server: the job token must not be empty");
    if (!options_.restore_from.empty()) {
      restore();
    } else if (!options_.checkpoint_dir.empty()) {
      // A server killed before its first interval still has one to restart from.
      (void)write_checkpoint();
    }
    listener_ = comm::listen_tcp(options_.host, options_.port, &port_);
    accept_thread_ = std::thread([this] { accept_loop(); });
    if (!options_.restore_from.empty() || !options_.checkpoint_dir.empty()) {
      keeper_ = std::thread([this] { keep(); });
    }
  }
  ~Impl() { stop(); }

  void stop() {
    if (stopping_.exchange(true)) return;
    {
      std::lock_guard lock(keeper_mutex_);
      stop_keeper_ = true;
    }
    keeper_cv_.notify_all();
    if (keeper_.joinable()) keeper_.join();
    if (!options_.checkpoint_dir.empty()) (void)write_checkpoint();
    accept_thread_.join();
    state_.fail(detail::concat("ps server ", options_.index, " is stopping"));
    std::list<Session> sessions;
    {
      std::lock_guard lock(mutex_);
      for (Session& s : sessions_) s.connection->shutdown();
      sessions.swap(sessions_);
    }
    for (Session& s : sessions) s.thread.join();
  }

  void wait_until_done(std::chrono::milliseconds timeout) {
    if (!state_.clocks().wait_all_done(Clock::now() + timeout)) {
      throw comm::TimeoutError(detail::concat(
          "ps server ", options_.index, ": workers still training after ", timeout.count(), " ms"));
    }
    std::lock_guard lock(mutex_);
    if (!failure_.empty()) throw comm::CommError(failure_);
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] ServerState& state() { return state_; }
  [[nodiscard]] ServerStats stats() const {
    return {pulls_.load(), pushes_.load(), shared_.load(), malformed_.load(), refused_.load()};
  }

 private:
  struct Session {
    std::shared_ptr<Connection> connection;
    std::shared_ptr<std::atomic<bool>> ended;
    std::thread thread;
  };

  // Joins the threads of connections that have ended (refused strangers, lost workers), so that
  // a long-lived server does not keep one per connection it ever had.
  void reap_sessions() {
    std::erase_if(sessions_, [](Session& s) {
      if (!s.ended->load()) return false;
      s.thread.join();
      return true;
    });
  }

  void restore() {
    const std::string& path = options_.restore_from;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw FormatError(detail::concat("ps server ", options_.index, ": cannot open checkpoint ",
                                       path, " to start from: ", std::strerror(errno)));
    }
    state_.restore(in, path);
    log("started from ", path);
  }

  // Writes the latest checkpoint, or step `step`'s (then keeps the newest keep_step_checkpoints
  // of those). Returns what went wrong, or "".
  std::string write_checkpoint(int64_t step = -1) {
    const std::string path = checkpoint_file(options_.checkpoint_dir, options_.index, step);
    try {
      std::filesystem::create_directories(options_.checkpoint_dir);
      write_file_atomically(
          path, [&](std::ostream& out) { state_.checkpoint(out); },
          detail::concat("ps server ", options_.index, " checkpoint"));
      if (step >= 0) prune_step_checkpoints(step);
      return "";
    } catch (const std::exception& e) {  // the next one may succeed; serving goes on
      log("could not write its checkpoint: ", e.what());
      return e.what();
    }
  }

  void prune_step_checkpoints(int64_t step) {
    std::lock_guard lock(steps_mutex_);
    step_checkpoints_.push_back(step);
    std::sort(step_checkpoints_.begin(), step_checkpoints_.end());
    step_checkpoints_.erase(std::unique(step_checkpoints_.begin(), step_checkpoints_.end()),
                            step_checkpoints_.end());
    while (static_cast<int>(step_checkpoints_.size()) > options_.keep_step_checkpoints) {
      std::filesystem::remove(
          checkpoint_file(options_.checkpoint_dir, options_.index, step_checkpoints_.front()));
      step_checkpoints_.erase(step_checkpoints_.begin());
    }
  }

  // Checkpoints every checkpoint_interval; after a restart, declares lost the workers that did
  // not come back within heartbeat_timeout.
  void keep() {
    const auto started = Clock::now();
    const bool checkpointing = !options_.checkpoint_dir.empty();
    bool expired = options_.restore_from.empty();
    auto next_checkpoint = started + options_.checkpoint_interval;
    std::unique_lock lock(keeper_mutex_);
    while (!stop_keeper_) {
      auto wake = checkpointing ? next_checkpoint : Clock::time_point::max();
      if (!expired) wake = std::min(wake, started + options_.heartbeat_timeout);
      if (keeper_cv_.wait_until(lock, wake, [&] { return stop_keeper_; })) break;
      const auto now = Clock::now();
      if (!expired && now >= started + options_.heartbeat_timeout) {
        expired = true;
        for (const uint32_t w : state_.clocks().expire_waiting()) {
          log("worker ", w, " did not come back within ", options_.heartbeat_timeout.count(),
              " ms of the restart: lost");
        }
      }
      if (checkpointing && now >= next_checkpoint) {
        lock.unlock();
        write_checkpoint();
        lock.lock();
        next_checkpoint = Clock::now() + options_.checkpoint_interval;
      }
    }
  }

  template <typename... Args>
  void log(const Args&... args) {
    if (options_.log == nullptr) return;
    const std::string line = detail::concat("tessera ps server ", options_.index, ": ", args...);
    std::fprintf(options_.log, "%s\n", line.c_str());
  }

  void accept_loop() {
    while (!stopping_) {
      pollfd p{.fd = listener_.fd(), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, kAcceptPollMs) <= 0) continue;
      const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        // Out of descriptors, say: rest instead of spinning on a readable listener.
        std::this_thread::sleep_for(std::chrono::milliseconds(kAcceptPollMs));
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto connection = std::make_shared<Connection>(comm::Socket(fd), comm::peer_address(fd));
      auto ended = std::make_shared<std::atomic<bool>>(false);
      std::lock_guard lock(mutex_);
      reap_sessions();
      sessions_.push_back({connection, ended, std::thread([this, connection, ended] {
                             serve_connection(*connection);
                             ended->store(true);
                           })});
    }
  }

  void serve_connection(Connection& c) {
    uint32_t worker = 0;
    try {
      worker = handshake_as_server(c, options_.token, static_cast<uint32_t>(options_.workers),
                                   Clock::now() + kHandshakeTimeout);
    } catch (const comm::CommError& e) {
      ++refused_;
      log("refused a connection: ", e.what());
      return;
    }
    state_.clocks().joined(worker);
    const bool said_bye = serve_requests(c, worker);
    c.shutdown();  // the worker's next call then fails at once instead of waiting for a reply
    if (said_bye) return;
    state_.clocks().lost(worker);
    if (options_.consistency == Consistency::kBsp && !stopping_) {
      const std::string why = detail::concat(
          "ps: worker ", worker, " (", c.peer(),
          ") was lost during synchronous (bsp) training, so no round can complete; the job "
          "stops, and resumes from its last checkpoint");
      log(why);
      {
        std::lock_guard lock(mutex_);
        failure_ = why;
      }
      state_.fail(why);
    }
  }

  void tell_hung(uint32_t worker) {
    if (!options_.on_hung) return;
    try {
      options_.on_hung(worker);
    } catch (const Error& e) {
      log("could not report worker ", worker, " as hung: ", e.what());
    }
  }

  // Serves until the worker says bye (true) or its connection ends (false).
  bool serve_requests(Connection& c, uint32_t worker) {
    BodyBuffer body;
    SharedSegment segment;  // once the worker asks for one
    ReplyValues values;
    const std::string waiting = detail::concat("waiting for worker ", worker, "'s next request");
    try {
      while (!stopping_) {
        const Header h = c.receive_header(Clock::now() + options_.heartbeat_timeout, true, waiting);
        std::span<std::byte> bytes;
        if (!h.shared) {
          bytes = body.resize(h.body_bytes);
          c.receive(bytes, Clock::now() + options_.timeout, waiting);
        }
        const MessageType reply = handle(c, worker, h, bytes, &segment, &values);
        if (h.type == MessageType::kBye && reply == MessageType::kAck) return true;
      }
    } catch (const ProtocolError& e) {
      ++malformed_;
      log("closed the connection of worker ", worker, " (", c.peer(),
          ") after a message whose header does not decode: ", e.what());
    } catch (const comm::CommError& e) {
      if (!stopping_) log("lost worker ", worker, " (", c.peer(), "): ", e.what());
    } catch (const comm::TimeoutError& e) {  // not even a heartbeat: it hangs
      log("lost worker ", worker, " (", c.peer(), "): no heartbeat: ", e.what());
      tell_hung(worker);
    }
    return false;
  }

  // The body of a request that came through the segment, and where its reply may go.
  static std::span<const std::byte> shared_body(const Header& h, const SharedSegment& segment,
                                                ReplyValues* values) {
    if (h.body_bytes > segment.size()) {
      throw ProtocolError(detail::concat(to_string(h.type), ": a shared body of ", h.body_bytes,
                                         " bytes, but the segment holds ", segment.size()));
    }
    const uint64_t reply_at = std::min(reply_offset(h.body_bytes), segment.size());
    values->reset(segment.bytes().subspan(reply_at));
    return segment.bytes().first(h.body_bytes);
  }

  // Answers kShareMemory with a new segment for the connection, replacing its old one (kError
  // when memory is short: the worker then keeps to the socket), and kMapDense with the table's.
  void share_memory(Connection& c, Header reply, std::span<const std::byte> body,
                    SharedSegment* segment) {
    if (reply.type == MessageType::kShareMemory) {
      const uint64_t bytes = decode_share_memory(body);
      *segment = SharedSegment();
      *segment = SharedSegment::create(bytes);
    } else if (!body.empty()) {
      throw ProtocolError("map_dense has no body");
    }
    const auto info =
        encode_segment(reply.type == MessageType::kShareMemory ? segment->info()
                                                               : state_.dense_segment(reply.table));
    reply.type = MessageType::kSegment;
    reply.body_bytes = info.size();
    c.send(reply, {std::span<const std::byte>(info)}, Clock::now() + options_.timeout);
  }

  // One request: its reply, or kError with the reason. Returns the reply's type.
  MessageType handle(Connection& c, uint32_t worker, const Header& h,
                     std::span<const std::byte> body, SharedSegment* segment, ReplyValues* values) {
    Header reply{.type = MessageType::kAck,
                 .sender = static_cast<uint32_t>(options_.index),
                 .table = h.table,
                 .clock = h.clock,
                 .request = h.request};
    std::string error;
    try {
      if (h.sender != worker) {
        throw ProtocolError(
            detail::concat("sender ", h.sender, " on worker ", worker, "'s connection"));
      }
      values->reset({});
      if (h.shared) body = shared_body(h, *segment, values);
      if (h.type == MessageType::kShareMemory || h.type == MessageType::kMapDense) {
        reply.type = h.type;
        share_memory(c, reply, body, segment);
        return MessageType::kSegment;
      }
      reply.type = state_.serve(worker, h, body, Clock::now() + options_.timeout, values);
    } catch (const ProtocolError& e) {
      ++malformed_;
      log("dropped a malformed ", to_string(h.type), " from worker ", worker, " (", c.peer(),
          "): ", e.what());
      error = e.what();
    } catch (const comm::CommError& e) {  // a wait that failed: the worker gets the reason
      error = e.what();
    } catch (const comm::TimeoutError& e) {
      error = e.what();
    }
    if (!error.empty()) {
      reply.type = MessageType::kError;
      reply.body_bytes = error.size();
      c.send(reply, {as_bytes(error)}, Clock::now() + options_.timeout);
      return MessageType::kError;
    }
    if (reply.type == MessageType::kHeartbeat) return reply.type;
    if (h.type == MessageType::kSteps) reply.clock = state_.clocks().steps(worker);
    if (h.type == MessageType::kCheckpoint) {
      error = options_.checkpoint_dir.empty()
                  ? detail::concat("ps server ", options_.index, " keeps no checkpoints")
                  : write_checkpoint(h.clock);
      if (!error.empty()) {
        reply.type = MessageType::kError;
        reply.body_bytes = error.size();
        c.send(reply, {as_bytes(error)}, Clock::now() + options_.timeout);
        return MessageType::kError;
      }
    }
    const bool mapped = h.type == MessageType::kPullMapped;
    if (h.type == MessageType::kPullDense || h.type == MessageType::kPullSparse || mapped) ++pulls_;
    if (h.type == MessageType::kPushDense || h.type == MessageType::kPushSparse) ++pushes_;
    if (h.shared || mapped) ++shared_;
    const std::span<const float> out =
        reply.type == MessageType::kValues ? values->values() : std::span<const float>();
    reply.body_bytes = out.size_bytes();
    reply.shared = values->in_shared() && reply.type == MessageType::kValues;
    c.send(reply, {reply.shared ? std::span<const std::byte>() : std::as_bytes(out)},
           Clock::now() + options_.timeout);
    return reply.type;
  }

  int port_ = 0;
  ServerOptions options_;
  ServerState state_;
  std::atomic<int64_t> pulls_{0}, pushes_{0}, shared_{0}, malformed_{0}, refused_{0};
  comm::Socket listener_;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::list<Session> sessions_;
  std::string failure_;
  std::thread keeper_;
  std::mutex steps_mutex_;
  std::vector<int64_t> step_checkpoints_;  // written by this server, oldest first
  std::mutex keeper_mutex_;
  std::condition_variable keeper_cv_;
  bool stop_keeper_ = false;
};

std::string checkpoint_file(const std::string& dir, int index, int64_t step) {
  const std::string name = step < 0 ? detail::concat("server-", index, ".ckpt")
                                    : detail::concat("server-", index, ".step-", step, ".ckpt");
  return (std::filesystem::path(dir) / name).string();
}

Server::Server(ServerOptions options, std::vector<TableSpec> tables,
               const std::map<uint32_t, std::vector<float>>& dense_initial)
    : impl_(std::make_unique<Impl>(std::move(options), tables, dense_initial)) {}

Server::~Server() = default;

int Server::port() const { return impl_->port(); }

void Server::wait_until_done(std::chrono::milliseconds timeout) { impl_->wait_until_done(timeout); }

void Server::stop() { impl_->stop(); }

ServerStats Server::stats() const { return impl_->stats(); }

std::vector<float> Server::dense_values(uint32_t table) {
  return impl_->state().dense_values(table);
}

int64_t Server::sparse_rows(uint32_t table) { return impl_->state().sparse_rows(table); }

}  // namespace tessera::parallel::ps
