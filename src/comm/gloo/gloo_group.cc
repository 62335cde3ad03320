#include "gloo_group_internal.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>

#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/context.h>
#include <gloo/gather.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/scatter.h>
#include <gloo/transport/device.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <gloo/types.h>

#include "duration.h"
#include "group_setup.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace gloo {
namespace {

using Clock = std::chrono::steady_clock;

bool mentions_timeout(const std::string& message) {
  std::string lower(message);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos;
}

// Gloo's rendezvous store interface over ours, with the group's key prefix.
class StoreAdapter final : public ::gloo::rendezvous::Store {
 public:
  StoreAdapter(comm::Store& store, std::string prefix, std::chrono::milliseconds timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + key, std::string_view(data.data(), data.size()));
  }

  std::vector<char> get(const std::string& key) override {
    const std::string value = store_.get(prefix_ + key, timeout_);
    return std::vector<char>(value.begin(), value.end());
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    for (const auto& k : keys) full.push_back(prefix_ + k);
    store_.wait(full, timeout);
  }

 private:
  comm::Store& store_;
  const std::string prefix_;
  const std::chrono::milliseconds timeout_;
};

// Meets the other ranks in the store, then lets Gloo connect the full mesh. The join step is
// ours so that a rank that never comes is named, and a rank with another idea of the group size
// is caught, before Gloo waits on its own keys.
std::shared_ptr<::gloo::Context> rendezvous(comm::Store& store, const std::string& prefix,
                                            const std::string& name, int rank, int size,
                                            std::chrono::milliseconds timeout,
                                            std::shared_ptr<::gloo::transport::Device>& device) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const std::string where = detail::concat("rendezvous of group ", name, " (rank ", rank, " of ",
                                           size, ") through the ", store.description());
  auto join_key = [&](int r) { return detail::concat(prefix, "/join/", r); };
  store.set(join_key(rank), std::to_string(size));
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(join_key(r));
  try {
    store.wait(keys, timeout);
  } catch (const TimeoutError&) {
    std::vector<int> missing;
    for (int r = 0; r < size; ++r) {
      if (!store.check({join_key(r)})) missing.push_back(r);
    }
    throw TimeoutError(detail::concat(where, ": ", rank_list(missing), " did not join within ",
                                      to_ms(Clock::now() - start), " ms"));
  }
  for (int r = 0; r < size; ++r) {
    const std::string their_size = store.get(join_key(r), remaining(deadline));
    if (their_size != std::to_string(size)) {
      throw CommError(detail::concat(where, ": rank ", r, " joined with group size ", their_size,
                                     ", this rank with ", size));
    }
  }
  auto context = std::make_shared<::gloo::rendezvous::Context>(rank, size);
  context->setTimeout(timeout);
  StoreAdapter adapter(store, prefix + "/gloo/", remaining(deadline));
  try {
    context->connectFullMesh(adapter, device);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw CommError(detail::concat(where, ": connecting to the other ranks failed: ", e.what()));
  }
  return context;
}

}  // namespace

GlooGroup::GlooGroup(Setup setup)
    : ProcessGroup(setup.rank, setup.size, std::move(setup.options)),
      store_(std::move(setup.store)),
      key_prefix_(std::move(setup.key_prefix)),
      device_(std::move(setup.device)) {
  context_ = rendezvous(*store_, key_prefix_, name(), rank(), size(), options().timeout, device_);
  tracker_ =
      std::make_unique<ProgressTracker>(store_, key_prefix_, rank(), size(), options().timeout);
  worker_ = std::make_shared<OpWorker>("tessera-comm");
}

GlooGroup::~GlooGroup() { shutdown_noexcept(); }

void GlooGroup::do_shutdown() {
  // Operations already issued run to completion (each within its deadline) before the
  // connections close: a peer may still be reading what we sent.
  if (worker_) worker_->stop();
  if (p2p_waiter_) p2p_waiter_->stop();
  if (tracker_) tracker_->stop();
  context_.reset();
}

std::shared_ptr<Work> GlooGroup::enqueue(const CallSignature& call, Body body) {
  const std::uint64_t seq = ++seq_;
  auto work = std::make_shared<AsyncWork>(describe_op(call.kind, seq, name()));
  post_work(
      worker_, work,
      [this, seq, call, body = std::move(body), work] { run(seq, call, body, *work); },
      options().timeout);
  return work;
}

void GlooGroup::run(std::uint64_t seq, const CallSignature& call, const Body& body,
                    AsyncWork& work) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work.fail(std::make_exception_ptr(CommError(detail::concat(
        describe_op(call.kind, seq, name()), ": not run: the group failed earlier: ", reason))));
    return;
  }
  const auto start = Clock::now();
  const auto deadline = start + options().timeout;
  tracker_->enter(seq, call);
  std::string cause;
  try {
    if (options().check_consistency && size() > 1) check_consistency(seq, call, deadline);
    // Tags: even for the operation, odd for its consistency check; unique across the ops in
    // flight on the wire, which is what Gloo asks of them.
    body(deadline, static_cast<std::uint32_t>(seq * 2));
    tracker_->complete(seq);
    work.complete();
    return;
  } catch (const CollectiveMismatchError&) {
    // Every rank saw the same signatures and skipped the operation: the group is still in step.
    tracker_->complete(seq);
    work.fail(std::current_exception());
    return;
  } catch (const std::exception& e) {
    cause = e.what();  // gloo::IoException, gloo::EnforceNotMet, ...: translated below
  } catch (...) {
    cause = "unknown exception";
  }
  std::exception_ptr error;
  std::string message;
  bool timed_out = false;
  try {
    error = diagnose(seq, call, start, cause, &message, &timed_out);
  } catch (...) {
    error = std::current_exception();
    message = cause;
  }
  failure_.record(message);
  tracker_->record_failure(seq, timed_out);
  // Gloo closes the connections of a context after its own timeouts but not after every error;
  // closing them all makes the peers fail now instead of at their deadline.
  try {
    context_->closeConnections();
  } catch (...) {  // NOLINT(bugprone-empty-catch): already failing; the first error is kept
  }
  work.fail(error);
}

void GlooGroup::check_consistency(std::uint64_t seq, const CallSignature& call,
                                  Clock::time_point deadline) {
  CallSignature::Wire mine = call.encode();
  std::vector<std::byte> all(CallSignature::kWireSize * static_cast<std::size_t>(size()));
  ::gloo::AllgatherOptions opts(context_);
  opts.setInput(reinterpret_cast<std::uint8_t*>(mine.data()), mine.size());
  opts.setOutput(reinterpret_cast<std::uint8_t*>(all.data()), all.size());
  opts.setTag(static_cast<std::uint32_t>(seq * 2 + 1));
  opts.setTimeout(remaining(deadline));
  ::gloo::allgather(opts);
  const CallSignature first = CallSignature::decode(all.data());
  for (int r = 1; r < size(); ++r) {
    const CallSignature theirs =
        CallSignature::decode(all.data() + static_cast<std::size_t>(r) * CallSignature::kWireSize);
    if (!(theirs == first)) {
      throw CollectiveMismatchError(detail::concat(
          describe_op(call.kind, seq, name()), ": collectives differ across ranks: rank ", r,
          " issued ", theirs.describe(), " where rank 0 issued ", first.describe()));
    }
  }
}

std::exception_ptr GlooGroup::diagnose(std::uint64_t seq, const CallSignature& call,
                                       Clock::time_point start, const std::string& cause,
                                       std::string* message, bool* timed_out) {
  using State = ProgressTracker::State;
  const auto timeout_ms = static_cast<long long>(options().timeout.count());
  const auto waited = to_ms(Clock::now() - start);
  const auto read_records = [&] {
    return tracker_->read_all(std::min(options().timeout, std::chrono::milliseconds(5000)));
  };
  auto records = read_records();
  // A peer stuck in this operation shows in the store within publish_delay() of entering it.
  // When the failure came sooner (a peer closed its connections) and a running peer still looks
  // behind, give its record that long before calling it absent.
  const bool maybe_stale = std::any_of(records.begin(), records.end(), [&](const auto& r) {
    return r.rank != rank() && r.known && r.position.entered < seq &&
           r.position.state == State::kRunning;
  });
  if (maybe_stale && Clock::now() < start + tracker_->publish_delay()) {
    std::this_thread::sleep_until(start + tracker_->publish_delay());
    records = read_records();
  }
  const std::string mine = call.describe();
  const std::string op = describe_op(call.kind, seq, name());
  std::vector<int> behind;
  std::vector<int> unknown;
  std::vector<int> timed_out_peers;
  int diverging = -1;
  std::string behind_detail;
  for (const auto& record : records) {
    if (record.rank == rank()) continue;
    const auto& p = record.position;
    if (!record.known) {
      unknown.push_back(record.rank);
      continue;
    }
    if (p.state == State::kTimedOut && p.failed == seq) timed_out_peers.push_back(record.rank);
    if (p.entered < seq) {
      behind.push_back(record.rank);
      std::string where = p.entered == 0 ? std::string(" has issued no collective")
                          : p.completed >= p.entered
                              ? detail::concat(" last completed #", p.entered, " ", p.call)
                              : detail::concat(" is still in #", p.entered, " ", p.call);
      if (p.state == State::kClosed) where += " and has shut its group down";
      if (p.state == State::kTimedOut || p.state == State::kFailed) {
        where += detail::concat(" and failed at #", p.failed);
      }
      behind_detail += detail::concat("; rank ", record.rank, where);
    } else if (p.entered == seq && p.call != mine && diverging < 0) {
      diverging = record.rank;
    }
  }
  // A timeout here, or a peer's (which then closed its connections, failing ours), or the wait
  // reaching the deadline whatever the transport said.
  *timed_out = mentions_timeout(cause) || !timed_out_peers.empty() || waited + 1 >= timeout_ms;
  const std::string unknown_note =
      unknown.empty() ? std::string()
                      : detail::concat(" (no progress record from ", rank_list(unknown), ")");
  if (diverging >= 0) {
    *message =
        detail::concat(op, ": collectives differ across ranks: rank ", diverging, " issued ",
                       records[static_cast<std::size_t>(diverging)].position.call,
                       " as collective #", seq, " where rank ", rank(), " issued ", mine,
                       " (found when the operation failed after ", waited, " ms: ", cause, ")");
    return std::make_exception_ptr(CollectiveMismatchError(*message));
  }
  if (!behind.empty()) {
    *message = detail::concat(op, ": ", rank_list(behind), " did not arrive within ", waited,
                              " ms (timeout ", timeout_ms, " ms)", behind_detail, unknown_note);
    if (*timed_out) return std::make_exception_ptr(TimeoutError(*message));
    *message += "; transport: " + cause;
    return std::make_exception_ptr(CommError(*message));
  }
  if (*timed_out) {
    *message = detail::concat(op, ": no progress within ", waited, " ms (timeout ", timeout_ms,
                              " ms) although every rank entered it", unknown_note,
                              timed_out_peers.empty()
                                  ? std::string()
                                  : "; " + rank_list(timed_out_peers) + " timed out too",
                              ": ", cause);
    return std::make_exception_ptr(TimeoutError(*message));
  }
  *message = detail::concat(op, " failed after ", waited, " ms", unknown_note, ": ", cause);
  return std::make_exception_ptr(CommError(*message));
}

std::shared_ptr<Work> GlooGroup::do_send(const void* data, std::size_t count, DataType dtype,
                                         int dst, std::uint32_t tag) {
  return post_p2p(OpKind::kSend, const_cast<void*>(data), count, dtype, dst, tag);
}

std::shared_ptr<Work> GlooGroup::do_recv(void* data, std::size_t count, DataType dtype, int src,
                                         std::uint32_t tag) {
  return post_p2p(OpKind::kRecv, data, count, dtype, src, tag);
}

std::shared_ptr<Work> GlooGroup::post_p2p(OpKind kind, void* data, std::size_t count,
                                          DataType dtype, int peer, std::uint32_t tag) {
  const bool sending = kind == OpKind::kSend;
  const std::string what =
      detail::concat(op_kind_name(kind), " #", ++p2p_seq_, sending ? " to rank " : " from rank ",
                     peer, " (tag ", tag, ") on group ", name());
  auto work = std::make_shared<AsyncWork>(what);
  if (count == 0) {
    work->complete();
    return work;
  }
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work->fail(std::make_exception_ptr(
        CommError(detail::concat(what, ": not run: the group failed earlier: ", reason))));
    return work;
  }
  std::shared_ptr<::gloo::transport::UnboundBuffer> buffer;
  try {
    buffer = context_->createUnboundBuffer(data, count * data_type_size(dtype));
    const std::uint64_t slot = ::gloo::Slot::build(kSendRecvSlotPrefix, tag);
    // Posting does not block: the transfer starts once the peer posts the matching call.
    if (sending) {
      buffer->send(peer, slot);
    } else {
      buffer->recv(peer, slot);
    }
  } catch (const std::exception& e) {
    work->fail(std::make_exception_ptr(CommError(detail::concat(what, ": ", e.what()))));
    return work;
  }
  if (!p2p_waiter_) p2p_waiter_ = std::make_unique<OpWorker>("tessera-p2p");
  const auto start = Clock::now();
  p2p_waiter_->post([this, buffer, work, what, sending, peer, start] {
    const auto deadline = start + options().timeout;
    try {
      const bool done =
          sending ? buffer->waitSend(remaining(deadline)) : buffer->waitRecv(remaining(deadline));
      if (done) {
        work->complete();
      } else {
        work->fail(std::make_exception_ptr(CommError(what + ": aborted")));
      }
    } catch (const std::exception& e) {
      const std::string cause = e.what();
      const auto waited = to_ms(Clock::now() - start);
      if (mentions_timeout(cause)) {
        const std::string message = detail::concat(
            what, ": no matching ", sending ? "recv on rank " : "send from rank ", peer, " within ",
            waited, " ms (timeout ", options().timeout.count(), " ms)");
        failure_.record(message);
        work->fail(std::make_exception_ptr(TimeoutError(message)));
      } else {
        const std::string message = detail::concat(what, " failed after ", waited, " ms: ", cause);
        failure_.record(message);
        work->fail(std::make_exception_ptr(CommError(message)));
      }
    }
  });
  return work;
}

std::unique_ptr<ProcessGroup> GlooGroup::do_split(int color, int key, std::string name) {
  const int index = ++splits_;
  auto exchange = std::make_shared<std::vector<std::int64_t>>(2 * static_cast<std::size_t>(size()));
  auto mine =
      std::make_shared<std::array<std::int64_t, 2>>(std::array<std::int64_t, 2>{color, key});
  const CallSignature call{.kind = OpKind::kSplit};
  auto work = enqueue(call, [this, exchange, mine](Clock::time_point deadline, std::uint32_t tag) {
    if (size() == 1) {
      std::copy(mine->begin(), mine->end(), exchange->begin());
      return;
    }
    ::gloo::AllgatherOptions opts(context_);
    opts.setInput(mine->data(), mine->size());
    opts.setOutput(exchange->data(), exchange->size());
    opts.setTag(tag);
    opts.setTimeout(remaining(deadline));
    ::gloo::allgather(opts);
  });
  work->wait();
  if (color == kNoColor) return nullptr;
  const SplitPlace place = split_place(*exchange, color, rank());
  Setup setup;
  setup.store = store_;
  // Keyed by the split's index and the color, not by the name: names need not be unique.
  setup.key_prefix = detail::concat(key_prefix_, "/split", index, "/", color);
  setup.rank = place.rank;
  setup.size = place.size;
  setup.options = options();
  setup.options.name =
      name.empty() ? detail::concat(this->name(), "/split", index, ":", color) : std::move(name);
  setup.device = device_;
  return std::make_unique<GlooGroup>(std::move(setup));
}

}  // namespace gloo

std::unique_ptr<ProcessGroup> make_gloo_group(std::shared_ptr<Store> store, int rank, int size,
                                              GroupOptions options, GlooOptions gloo_options) {
  check_group_args("make_gloo_group", store.get(), rank, size, options);
  if (gloo_options.hostname.empty() && gloo_options.iface.empty()) {
    throw ValueError("make_gloo_group: no hostname or interface to bind the transport to");
  }
  ::gloo::transport::tcp::attr attr;
  if (!gloo_options.iface.empty()) {
    attr.iface = gloo_options.iface;
  } else {
    attr.hostname = gloo_options.hostname;
  }
  std::shared_ptr<::gloo::transport::Device> device;
  try {
    device = ::gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw CommError(detail::concat("make_gloo_group: cannot open the TCP transport on ",
                                   gloo_options.iface.empty() ? "host " + gloo_options.hostname
                                                              : "interface " + gloo_options.iface,
                                   ": ", e.what()));
  }
  gloo::GlooGroup::Setup setup;
  setup.store = std::move(store);
  setup.key_prefix = "comm/" + options.name;
  setup.rank = rank;
  setup.size = size;
  setup.options = std::move(options);
  setup.device = std::move(device);
  return std::make_unique<gloo::GlooGroup>(std::move(setup));
}

}  // namespace tessera::comm
