#include "tessera/parallel/ps/worker.h"

#include <algorithm>
#include <array>
#include <bit>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "connection.h"
#include "key_index.h"
#include "shared_segment.h"
#include "tessera/comm/address.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {
// Worker::Impl's members: a named namespace, because a class with external linkage may not hold
// members of types with internal linkage outside the file's own translation unit (a unity build).
namespace worker_parts {

// A server's connection, and the memory shared with it once a body needed it.
struct Link {
  std::unique_ptr<Connection> connection;
  SharedSegment segment = {};
  std::map<uint32_t, SharedSegment> tables = {};  // dense tables' values, mapped read-only
  bool socket_only = false;  // the server's segment cannot be reached from here
};

// Keys of one call, de-duplicated and grouped by server: where each distinct key went. Kept by
// the worker from call to call, so that its memory is reused, and so that a push of the keys
// just pulled (or the other way round) reuses the plan.
struct KeyPlan {
  KeyIndex seen;
  std::vector<std::vector<uint64_t>> keys;           // per server
  std::vector<std::pair<int, int64_t>> slot_of_key;  // per input key: server, index there
  std::vector<std::pair<int, int64_t>> slot_of_distinct;
  std::vector<uint64_t> planned;  // the keys of this plan

  void plan(std::span<const uint64_t> batch, int servers) {
    if (static_cast<int>(keys.size()) == servers && std::ranges::equal(batch, planned)) return;
    planned.assign(batch.begin(), batch.end());
    keys.resize(static_cast<size_t>(servers));
    for (auto& list : keys) list.clear();
    slot_of_key.clear();
    slot_of_distinct.clear();
    seen.clear();
    for (size_t k = 0; k < batch.size(); ++k) {
      if (k + KeyIndex::kPrefetchDistance < batch.size()) {
        seen.prefetch(batch[k + KeyIndex::kPrefetchDistance]);
      }
      const uint64_t key = batch[k];
      const auto [distinct, fresh] = seen.find_or_insert(key);
      if (fresh) {
        const int s = server_of_key(key, servers);
        auto& list = keys[static_cast<size_t>(s)];
        slot_of_distinct.emplace_back(s, static_cast<int64_t>(list.size()));
        list.push_back(key);
      }
      slot_of_key.push_back(slot_of_distinct[static_cast<size_t>(distinct)]);
    }
  }
};

}  // namespace worker_parts
using worker_parts::KeyPlan;
using worker_parts::Link;

namespace {

constexpr auto kRetryPause = std::chrono::milliseconds(100);
constexpr uint64_t kMinSegmentBytes = uint64_t{64} << 10;

// A server's kError reply: it heard the request and refused it, so asking again would not help.
class Refused : public comm::CommError {
 public:
  using comm::CommError::CommError;
};

// One request to one server, kept until its reply so that it can be sent again.
struct Request {
  MessageType type = MessageType::kAck;
  uint32_t table = 0;
  int64_t clock = 0;
  std::vector<std::span<const std::byte>> parts = {};
  std::span<float> out = {};  // a pull's reply values
  // Whether the reply's values may stay in the shared segment instead of being copied to out
  // (until the next request to the server); `reply` is where they are once received.
  bool in_place = false;
  std::span<const float> reply = {};
};

}  // namespace

class Worker::Impl {
 public:
  Impl(WorkerOptions options, const std::vector<TableSpec>& tables) : options_(std::move(options)) {
    check_tables(tables);
    if (options_.servers.empty()) throw ValueError("ps::Worker: no servers given");
    for (const TableSpec& t : tables) tables_[t.id] = t;
    const auto deadline = Clock::now() + options_.connect_timeout;
    for (size_t s = 0; s < options_.servers.size(); ++s) {
      servers_.push_back({.connection = connect(s, deadline, options_.connect_timeout)});
      send_mutexes_.push_back(std::make_unique<std::mutex>());
    }
    heartbeat_ = std::thread([this] { send_heartbeats(); });
  }

  ~Impl() {
    try {
      finish();
    } catch (const Error&) {  // the servers may be gone already; nothing is lost
    }
    stop_heartbeats();
  }

  void pull_dense(uint32_t table, int64_t clock, std::span<float> out) {
    const TableSpec& t = spec(table, TableSpec::Kind::kDense, out.size());
    std::vector<std::array<int64_t, 2>> bodies(servers_.size());
    std::vector<Request> requests(servers_.size());
    const auto deadline = Clock::now() + options_.timeout;
    for (int s = 0; s < servers(); ++s) {
      const Range r = shard_range(t.size, s, servers());
      bodies[s] = {r.begin, r.size()};
      const bool mapped = mapped_table(s, table, r.size(), deadline) != nullptr;
      requests[s] = {.type = mapped ? MessageType::kPullMapped : MessageType::kPullDense,
                     .table = table,
                     .clock = clock,
                     .parts = {bytes_of<int64_t>(bodies[s])},
                     .out = out.subspan(r.begin, r.size())};
    }
    exchange(requests);
    // A server that was restarted meanwhile answered through the socket (retry()).
    for (int s = 0; s < servers(); ++s) {
      if (requests[s].type != MessageType::kPullMapped) continue;
      const std::span<const std::byte> values = servers_[s].tables.at(table).bytes();
      std::copy_n(reinterpret_cast<const float*>(values.data()), requests[s].out.size(),
                  requests[s].out.begin());
    }
  }

  void push_dense(uint32_t table, int64_t clock, std::span<const float> grad, float lr) {
    const TableSpec& t = spec(table, TableSpec::Kind::kDense, grad.size());
    std::vector<DensePrefix> prefixes(servers_.size());
    std::vector<Request> requests(servers_.size());
    for (int s = 0; s < servers(); ++s) {
      const Range r = shard_range(t.size, s, servers());
      prefixes[s] = {.lr = lr, .offset = r.begin, .count = r.size()};
      requests[s] = {.type = MessageType::kPushDense,
                     .table = table,
                     .clock = clock,
                     .parts = {bytes_of(prefixes[s]), bytes_of(grad.subspan(r.begin, r.size()))}};
    }
    exchange(requests);
  }

  void pull_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                   std::span<float> out) {
    const int64_t dim = spec(table, TableSpec::Kind::kSparse).dim;
    check_size("pull_sparse output", out.size(), keys.size() * dim);
    KeyPlan& plan = plan_;
    plan.plan(keys, servers());
    std::vector<uint64_t> counts(servers_.size());
    auto& rows = rows_;
    rows.resize(servers_.size());
    std::vector<Request> requests(servers_.size());
    for (int s = 0; s < servers(); ++s) {
      const auto& list = plan.keys[s];
      counts[s] = list.size();
      rows[s].resize(list.size() * dim);
      requests[s] = {.type = MessageType::kPullSparse,
                     .table = table,
                     .clock = clock,
                     .parts = {bytes_of(counts[s]), bytes_of(std::span<const uint64_t>(list))},
                     .out = rows[s],
                     .in_place = true};
    }
    exchange(requests);
    for (size_t k = 0; k < keys.size(); ++k) {
      const auto [s, index] = plan.slot_of_key[k];
      std::copy_n(requests[s].reply.begin() + index * dim, dim,
                  out.begin() + static_cast<int64_t>(k) * dim);
    }
  }

  void push_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                   std::span<const float> grads, float lr) {
    const int64_t dim = spec(table, TableSpec::Kind::kSparse).dim;
    check_size("push_sparse gradients", grads.size(), keys.size() * dim);
    KeyPlan& plan = plan_;
    plan.plan(keys, servers());
    auto& sums = rows_;
    sums.resize(servers_.size());
    for (int s = 0; s < servers(); ++s) sums[s].assign(plan.keys[s].size() * dim, 0.0f);
    for (size_t k = 0; k < keys.size(); ++k) {
      const auto [s, index] = plan.slot_of_key[k];
      float* sum = sums[s].data() + index * dim;
      const float* g = grads.data() + static_cast<int64_t>(k) * dim;
      for (int64_t i = 0; i < dim; ++i) sum[i] += g[i];
    }
    std::vector<SparsePrefix> prefixes(servers_.size());
    std::vector<Request> requests(servers_.size());
    for (int s = 0; s < servers(); ++s) {
      prefixes[s] = {.lr = lr, .n = plan.keys[s].size()};
      requests[s] = {
          .type = MessageType::kPushSparse,
          .table = table,
          .clock = clock,
          .parts = {bytes_of(prefixes[s]), bytes_of(std::span<const uint64_t>(plan.keys[s])),
                    bytes_of(std::span<const float>(sums[s]))}};
    }
    exchange(requests);
  }

  void checkpoint(int64_t step) {
    std::vector<Request> requests(servers_.size(),
                                  Request{.type = MessageType::kCheckpoint, .clock = step});
    exchange(requests);
  }

  int64_t steps() {
    std::vector<Request> requests(servers_.size(), Request{.type = MessageType::kSteps});
    return exchange(requests);
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    stop_heartbeats();
    std::vector<Request> requests(servers_.size(), Request{.type = MessageType::kBye});
    exchange(requests);
  }

 private:
  [[nodiscard]] int servers() const { return static_cast<int>(servers_.size()); }

  // While the caller computes, the servers still hear from this worker. A connection busy with a
  // message is skipped: that message is the sign of life.
  void send_heartbeats() {
    std::unique_lock lock(heartbeat_mutex_);
    while (!heartbeat_cv_.wait_for(lock, options_.heartbeat_interval,
                                   [&] { return stop_heartbeat_; })) {
      for (int s = 0; s < servers(); ++s) {
        std::unique_lock send_lock(*send_mutexes_[s], std::try_to_lock);
        if (!send_lock.owns_lock()) continue;
        try {
          servers_[s].connection->send({.type = MessageType::kHeartbeat, .sender = options_.index},
                                       {}, Clock::now() + options_.heartbeat_interval);
        } catch (const Error&) {  // the caller's next call reports the connection's failure
        }
      }
    }
  }

  void stop_heartbeats() {
    {
      std::lock_guard lock(heartbeat_mutex_);
      stop_heartbeat_ = true;
    }
    heartbeat_cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  std::unique_ptr<Connection> connect(size_t s, Clock::time_point deadline,
                                      std::chrono::milliseconds budget) {
    const std::string& address = options_.servers[s];
    const auto hp = comm::parse_host_port(address);
    if (!hp || hp->port == 0) {
      throw ValueError(detail::concat("ps server ", s, ": '", address, "' is not HOST:PORT"));
    }
    std::string error;
    while (true) {
      comm::Socket socket = comm::connect_tcp(hp->host, hp->port, deadline, &error);
      if (socket.valid()) {
        auto c = std::make_unique<Connection>(std::move(socket), address);
        handshake_as_worker(*c, options_.token, options_.index, deadline);
        return c;
      }
      if (Clock::now() + kRetryPause >= deadline) break;
      std::this_thread::sleep_for(kRetryPause);
    }
    throw comm::TimeoutError(detail::concat("ps worker ", options_.index, ": cannot reach server ",
                                            s, " at ", address, " within ", budget.count(),
                                            " ms: ", error));
  }

  // Sends requests[s] to server s for every s before it waits for any reply, then takes the
  // replies. A server whose connection broke is reconnected and asked again (retry()).
  // Returns the largest clock of the replies.
  int64_t exchange(std::vector<Request>& requests) {
    const auto deadline = Clock::now() + options_.timeout;
    int64_t clock = 0;
    std::vector<Header> sent(requests.size());
    std::vector<std::string> broken(requests.size());
    for (int s = 0; s < servers(); ++s) {
      try {
        sent[s] = send(s, requests[s], deadline);
      } catch (const Refused&) {
        throw;
      } catch (const comm::CommError& e) {
        broken[s] = e.what();
      }
    }
    for (int s = 0; s < servers(); ++s) {
      if (!broken[s].empty()) continue;
      try {
        clock = std::max(clock, receive(s, sent[s], requests[s], deadline));
      } catch (const Refused&) {
        throw;
      } catch (const comm::CommError& e) {
        broken[s] = e.what();
      }
    }
    for (int s = 0; s < servers(); ++s) {
      if (!broken[s].empty()) clock = std::max(clock, retry(s, requests[s], broken[s]));
    }
    return clock;
  }

  // Server s's connection broke (it died; a launcher may be restarting it): reconnects and sends
  // the request again until it is answered or reconnect_timeout passes. A push may then be
  // applied twice, if the server had applied and checkpointed it before it died.
  int64_t retry(int s, Request& request, std::string error) {
    if (options_.reconnect_timeout.count() <= 0) throw comm::CommError(error);
    if (request.type == MessageType::kPullMapped) request.type = MessageType::kPullDense;
    const auto until = Clock::now() + options_.reconnect_timeout;
    while (Clock::now() < until) {
      try {
        auto fresh = connect(s, until, options_.reconnect_timeout);
        {
          std::lock_guard lock(*send_mutexes_[s]);
          servers_[s] = {.connection = std::move(fresh)};
        }
        const auto deadline = Clock::now() + options_.timeout;
        const Header h = send(s, request, deadline);
        return receive(s, h, request, deadline);
      } catch (const Refused&) {
        throw;
      } catch (const comm::CommError& e) {
        error = e.what();
        std::this_thread::sleep_for(kRetryPause);
      } catch (const comm::TimeoutError& e) {
        error = e.what();
      }
    }
    throw comm::CommError(detail::concat("ps worker ", options_.index, ": lost server ", s, " (",
                                         options_.servers[s],
                                         ") and it did not answer again within ",
                                         options_.reconnect_timeout.count(), " ms: ", error));
  }

  const TableSpec& spec(uint32_t table, TableSpec::Kind kind, size_t dense_size = 0) const {
    const auto it = tables_.find(table);
    if (it == tables_.end() || it->second.kind != kind) {
      throw ValueError(detail::concat("ps::Worker: no ",
                                      kind == TableSpec::Kind::kDense ? "dense" : "sparse",
                                      " table ", table));
    }
    if (kind == TableSpec::Kind::kDense) {
      check_size(detail::concat("dense table ", table), dense_size, it->second.size);
    }
    return it->second;
  }

  static void check_size(const std::string& what, size_t got, uint64_t want) {
    if (got != want) {
      throw ValueError(
          detail::concat("ps::Worker: ", what, " has ", got, " floats, expected ", want));
    }
  }

  Header send(int s, const Request& r, Clock::time_point deadline) {
    Header h{.type = r.type,
             .sender = options_.index,
             .table = r.table,
             .clock = r.clock,
             .request = next_request_++};
    for (const auto& p : r.parts) h.body_bytes += p.size();
    std::lock_guard lock(*send_mutexes_[s]);
    Link& link = servers_[s];
    if (!has_segment(s, reply_offset(h.body_bytes) + r.out.size_bytes(), deadline)) {
      link.connection->send(h, r.parts, deadline);
      return h;
    }
    std::byte* at = link.segment.bytes().data();
    for (const auto& p : r.parts) at = std::copy(p.begin(), p.end(), at);
    h.shared = true;
    link.connection->send(h, {}, deadline);
    return h;
  }

  // Whether server s's segment can hold a request and its reply of `bytes` together; asks the
  // server for a larger one if need be. Bodiless messages keep to the socket.
  bool has_segment(int s, uint64_t bytes, Clock::time_point deadline) {
    Link& link = servers_[s];
    if (!options_.shared_memory || link.socket_only || bytes <= reply_offset(0)) return false;
    if (link.segment.size() >= bytes) return true;
    const uint64_t size = std::bit_ceil(std::max(bytes, kMinSegmentBytes));
    if (size > kMaxSegmentBytes) return false;
    link.segment = SharedSegment();
    const std::optional<SegmentInfo> info =
        ask_for_segment(s, {.type = MessageType::kShareMemory, .body_bytes = sizeof(size)},
                        bytes_of(size), deadline);
    if (info && info->bytes == size) {
      if (std::optional<SharedSegment> segment = SharedSegment::open(*info)) {
        link.segment = std::move(*segment);
      }
    }
    link.socket_only = link.segment.size() == 0;
    return !link.socket_only;
  }

  // Server s's range of dense table `table` mapped from the server's memory, or nullptr when it
  // is not on this host (the worker then keeps to the socket).
  const SharedSegment* mapped_table(int s, uint32_t table, int64_t floats,
                                    Clock::time_point deadline) {
    std::lock_guard lock(*send_mutexes_[s]);
    Link& link = servers_[s];
    if (!options_.shared_memory || link.socket_only) return nullptr;
    if (const auto it = link.tables.find(table); it != link.tables.end()) return &it->second;
    const std::optional<SegmentInfo> info =
        ask_for_segment(s, {.type = MessageType::kMapDense, .table = table}, {}, deadline);
    std::optional<SharedSegment> segment;
    if (info && info->bytes == static_cast<uint64_t>(floats) * sizeof(float)) {
      segment = SharedSegment::open(*info, /*writable=*/false);
    }
    if (!segment) {
      link.socket_only = true;
      return nullptr;
    }
    return &link.tables.emplace(table, std::move(*segment)).first->second;
  }

  // Sends server s a request for a segment and returns its kSegment answer, or nullopt when it
  // answers kError (it could not make one). The caller holds s's send mutex.
  std::optional<SegmentInfo> ask_for_segment(int s, Header h, std::span<const std::byte> body,
                                             Clock::time_point deadline) {
    Connection& c = *servers_[s].connection;
    h.sender = options_.index;
    h.request = next_request_++;
    c.send(h, {body}, deadline);
    const std::string waiting =
        detail::concat("waiting for ps server ", s, " to answer ", to_string(h.type));
    const Header reply = c.receive_header(deadline, true, waiting);
    if (reply.request != h.request ||
        (reply.type != MessageType::kSegment && reply.type != MessageType::kError)) {
      throw ProtocolError(detail::concat("ps server ", s, " (", c.peer(), ") answered ",
                                         to_string(h.type), " with ", to_string(reply.type)));
    }
    std::string text(reply.body_bytes, '\0');  // a segment's description or kError's reason
    c.receive(std::as_writable_bytes(std::span(text)), deadline, waiting);
    if (reply.type == MessageType::kError) return std::nullopt;
    return decode_segment(std::as_bytes(std::span(text)));
  }

  // The reply to `sent`: kValues of exactly r.out.size() floats, or kAck when r.out is empty.
  // Sets r.reply; returns the reply's clock.
  int64_t receive(int s, const Header& sent, Request& r, Clock::time_point deadline) {
    const std::span<float> out = r.out;
    Link& link = servers_[s];
    Connection& c = *link.connection;
    const std::string waiting = detail::concat("waiting for ps server ", s, " to answer ",
                                               to_string(sent.type), " of step ", sent.clock);
    const Header h = c.receive_header(deadline, true, waiting);
    if (h.type == MessageType::kError) {
      std::string text(h.body_bytes, '\0');
      c.receive(std::as_writable_bytes(std::span<char>(text)), deadline, waiting);
      throw Refused(detail::concat("ps server ", s, " (", c.peer(), ") refused ",
                                   to_string(sent.type), ": ", text));
    }
    const bool values =
        sent.type == MessageType::kPullDense || sent.type == MessageType::kPullSparse;
    const MessageType want = values ? MessageType::kValues : MessageType::kAck;
    const uint64_t reply_at = reply_offset(sent.body_bytes);
    if (h.type != want || h.request != sent.request ||
        h.body_bytes != (values ? out.size_bytes() : 0) ||
        (h.shared && (!sent.shared || reply_at + h.body_bytes > link.segment.size()))) {
      throw ProtocolError(detail::concat("ps server ", s, " (", c.peer(), ") answered ",
                                         to_string(sent.type), " #", sent.request, " with ",
                                         to_string(h.type), " #", h.request, " of ", h.body_bytes,
                                         h.shared ? " shared" : "", " bytes"));
    }
    r.reply = out;
    if (!values) return h.clock;
    if (h.shared) {
      const auto* at = reinterpret_cast<const float*>(link.segment.bytes().data() + reply_at);
      if (r.in_place) {
        r.reply = {at, out.size()};
      } else {
        std::copy_n(at, out.size(), out.begin());
      }
    } else {
      c.receive(std::as_writable_bytes(out), deadline, waiting);
    }
    return h.clock;
  }

  WorkerOptions options_;
  std::map<uint32_t, TableSpec> tables_;
  std::vector<Link> servers_;
  std::vector<std::unique_ptr<std::mutex>> send_mutexes_;  // one per server, with heartbeats
  KeyPlan plan_;                                           // sparse calls' scratch
  std::vector<std::vector<float>> rows_;                   // per server: rows pulled or summed
  uint64_t next_request_ = 1;
  bool finished_ = false;
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_cv_;
  bool stop_heartbeat_ = false;
  std::thread heartbeat_;
};

Worker::Worker(WorkerOptions options, std::vector<TableSpec> tables)
    : impl_(std::make_unique<Impl>(std::move(options), tables)) {}

Worker::~Worker() = default;

void Worker::pull_dense(uint32_t table, int64_t clock, std::span<float> out) {
  impl_->pull_dense(table, clock, out);
}
void Worker::push_dense(uint32_t table, int64_t clock, std::span<const float> grad, float lr) {
  impl_->push_dense(table, clock, grad, lr);
}
void Worker::pull_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                         std::span<float> out) {
  impl_->pull_sparse(table, clock, keys, out);
}
void Worker::push_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                         std::span<const float> grads, float lr) {
  impl_->push_sparse(table, clock, keys, grads, lr);
}
int64_t Worker::steps() { return impl_->steps(); }
void Worker::checkpoint(int64_t step) { impl_->checkpoint(step); }
void Worker::finish() { impl_->finish(); }

}  // namespace tessera::parallel::ps
