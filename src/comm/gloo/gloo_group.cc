#include "gloo_group.h"

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

#include "group_setup.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace gloo {
namespace {

using Clock = std::chrono::steady_clock;

// Slot prefixes for our own point-to-point traffic, clear of Gloo's collective prefixes
// (0x01..0x08 in gloo/types.h).
constexpr std::uint8_t kSendRecvSlotPrefix = 0x40;
constexpr std::uint8_t kReduceScatterSlotPrefix = 0x41;

long long to_ms(Clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// Time left before `deadline`, at least 1 ms (Gloo rejects a zero timeout).
std::chrono::milliseconds remaining(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// Calls f with a null T* for the element type of `dtype`: Gloo's options are templated on the
// element type, but only use its size (reductions come from reduce_function()).
template <typename F>
void with_element_type(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::kFloat32:
      return f(static_cast<float*>(nullptr));
    case DataType::kFloat64:
      return f(static_cast<double*>(nullptr));
    case DataType::kInt32:
      return f(static_cast<std::int32_t*>(nullptr));
    case DataType::kInt64:
      return f(static_cast<std::int64_t*>(nullptr));
    case DataType::kBFloat16:
    case DataType::kFloat16:
      return f(static_cast<std::uint16_t*>(nullptr));
  }
}

template <typename T>
T* typed(const void* p) {
  // Gloo takes non-const pointers even for buffers it only reads.
  return static_cast<T*>(const_cast<void*>(p));
}

bool mentions_timeout(const std::string& message) {
  std::string lower(message);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
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

std::shared_ptr<Work> GlooGroup::do_allreduce(void* data, std::size_t count, DataType dtype,
                                              ReduceOp op) {
  const CallSignature call{.kind = OpKind::kAllreduce, .dtype = dtype, .op = op, .count = count};
  return enqueue(call,
                 [this, data, count, dtype, op](Clock::time_point deadline, std::uint32_t tag) {
                   if (count == 0) return;
                   // In place on the caller's buffer: Gloo's ring reduces into it, nothing is
                   // copied first.
                   ::gloo::AllreduceOptions opts(context_);
                   with_element_type(dtype, [&](auto* type) {
                     using T = std::remove_pointer_t<decltype(type)>;
                     opts.setOutput(typed<T>(data), count);
                   });
                   opts.setReduceFunction(reduce_function(dtype, op));
                   opts.setTag(tag);
                   opts.setTimeout(remaining(deadline));
                   ::gloo::allreduce(opts);
                   if (op == ReduceOp::kAvg) divide_in_place(data, count, dtype, size());
                 });
}

std::shared_ptr<Work> GlooGroup::do_broadcast(void* data, std::size_t count, DataType dtype,
                                              int root) {
  const CallSignature call{
      .kind = OpKind::kBroadcast, .dtype = dtype, .root = root, .count = count};
  return enqueue(call,
                 [this, data, count, dtype, root](Clock::time_point deadline, std::uint32_t tag) {
                   if (count == 0 || size() == 1) return;
                   ::gloo::BroadcastOptions opts(context_);
                   with_element_type(dtype, [&](auto* type) {
                     using T = std::remove_pointer_t<decltype(type)>;
                     opts.setOutput(typed<T>(data), count);
                   });
                   opts.setRoot(root);
                   opts.setTag(tag);
                   opts.setTimeout(remaining(deadline));
                   ::gloo::broadcast(opts);
                 });
}

std::shared_ptr<Work> GlooGroup::do_reduce(void* data, std::size_t count, DataType dtype,
                                           ReduceOp op, int root) {
  const CallSignature call{
      .kind = OpKind::kReduce, .dtype = dtype, .op = op, .root = root, .count = count};
  return enqueue(
      call, [this, data, count, dtype, op, root](Clock::time_point deadline, std::uint32_t tag) {
        if (count == 0) return;
        if (size() > 1) {
          ::gloo::ReduceOptions opts(context_);
          with_element_type(dtype, [&](auto* type) {
            using T = std::remove_pointer_t<decltype(type)>;
            opts.setOutput(typed<T>(data), count);
          });
          opts.setRoot(root);
          opts.setReduceFunction(reduce_function(dtype, op));
          opts.setTag(tag);
          opts.setTimeout(remaining(deadline));
          ::gloo::reduce(opts);
        }
        if (op == ReduceOp::kAvg && rank() == root) divide_in_place(data, count, dtype, size());
      });
}

std::shared_ptr<Work> GlooGroup::do_allgather(const void* in, void* out, std::size_t count,
                                              DataType dtype) {
  const CallSignature call{.kind = OpKind::kAllgather, .dtype = dtype, .count = count};
  return enqueue(
      call, [this, in, out, count, dtype](Clock::time_point deadline, std::uint32_t tag) {
        if (count == 0) return;
        const std::size_t block = count * data_type_size(dtype);
        auto* own_block = static_cast<std::byte*>(out) + static_cast<std::size_t>(rank()) * block;
        if (size() == 1) {
          if (in != own_block) std::memmove(own_block, in, block);
          return;
        }
        ::gloo::AllgatherOptions opts(context_);
        with_element_type(dtype, [&](auto* type) {
          using T = std::remove_pointer_t<decltype(type)>;
          // Without an input Gloo gathers in place, from this rank's block of `out`.
          if (in != own_block) opts.setInput(typed<T>(in), count);
          opts.setOutput(typed<T>(out), count * static_cast<std::size_t>(size()));
        });
        opts.setTag(tag);
        opts.setTimeout(remaining(deadline));
        ::gloo::allgather(opts);
      });
}

std::shared_ptr<Work> GlooGroup::do_allgatherv(const void* in, void* out,
                                               const std::vector<std::size_t>& counts,
                                               DataType dtype) {
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  const CallSignature call{.kind = OpKind::kAllgatherv,
                           .dtype = dtype,
                           .count = total,
                           .counts_hash = hash_counts(counts)};
  return enqueue(
      call, [this, in, out, counts, total, dtype](Clock::time_point deadline, std::uint32_t tag) {
        if (total == 0) return;
        const std::size_t esz = data_type_size(dtype);
        const std::size_t mine = counts[static_cast<std::size_t>(rank())];
        if (size() == 1) {
          if (in != out) std::memmove(out, in, mine * esz);
          return;
        }
        ::gloo::AllgathervOptions opts(context_);
        with_element_type(dtype, [&](auto* type) {
          using T = std::remove_pointer_t<decltype(type)>;
          std::size_t offset = 0;
          for (int r = 0; r < rank(); ++r) offset += counts[static_cast<std::size_t>(r)];
          if (in != typed<T>(out) + offset) opts.setInput(typed<T>(in), mine);
          opts.setOutput(typed<T>(out), counts);
        });
        opts.setTag(tag);
        opts.setTimeout(remaining(deadline));
        ::gloo::allgatherv(opts);
      });
}

std::shared_ptr<Work> GlooGroup::do_reduce_scatter(const void* in, void* out,
                                                   std::size_t recv_count, DataType dtype,
                                                   ReduceOp op) {
  const CallSignature call{
      .kind = OpKind::kReduceScatter, .dtype = dtype, .op = op, .count = recv_count};
  return enqueue(
      call, [this, in, out, recv_count, dtype, op](Clock::time_point deadline, std::uint32_t tag) {
        reduce_scatter_ring(in, out, recv_count, dtype, op, deadline, tag);
      });
}

// Ring reduce-scatter (Gloo's new API has none): in n-1 steps each rank passes a running partial
// sum of one block to its right neighbour, adding its own contribution to the block it
// receives; after the last step rank r holds the full reduction of block r. Each rank sends and
// receives (n-1)/n of the input: the bandwidth optimum.
void GlooGroup::reduce_scatter_ring(const void* in, void* out, std::size_t recv_count,
                                    DataType dtype, ReduceOp op, Clock::time_point deadline,
                                    std::uint32_t tag) {
  if (recv_count == 0) return;
  const int n = size();
  const int r = rank();
  const std::size_t bytes = recv_count * data_type_size(dtype);
  const auto* input = static_cast<const std::byte*>(in);
  auto block = [&](int i) { return input + static_cast<std::size_t>((i % n + n) % n) * bytes; };
  if (n == 1) {
    std::memmove(out, in, bytes);
    return;
  }
  const ReduceFunction fn = reduce_function(dtype, op);
  const int right = (r + 1) % n;
  const int left = (r - 1 + n) % n;
  const std::uint64_t slot = ::gloo::Slot::build(kReduceScatterSlotPrefix, tag);
  // Two scratch blocks alternate: one is being sent while the next partial sum arrives.
  std::vector<std::byte> scratch(n > 2 ? 2 * bytes : 0);
  auto input_buffer = context_->createUnboundBuffer(const_cast<void*>(in), bytes * n);
  auto out_buffer = context_->createUnboundBuffer(out, bytes);
  std::unique_ptr<::gloo::transport::UnboundBuffer> partial[2];
  if (n > 2) {
    partial[0] = context_->createUnboundBuffer(scratch.data(), bytes);
    partial[1] = context_->createUnboundBuffer(scratch.data() + bytes, bytes);
  }
  for (int step = 0; step < n - 1; ++step) {
    ::gloo::transport::UnboundBuffer* target =
        step == n - 2 ? out_buffer.get() : partial[step % 2].get();
    target->recv(left, slot);
    if (step == 0) {
      input_buffer->send(right, slot, static_cast<std::size_t>((r - 1 + n) % n) * bytes, bytes);
    } else {
      partial[(step - 1) % 2]->send(right, slot);
    }
    target->waitRecv(remaining(deadline));
    // The partial sum that arrived covers block r-step-2; add this rank's share of it.
    fn(target->ptr, target->ptr, block(r - step - 2), recv_count);
    if (step == 0) {
      input_buffer->waitSend(remaining(deadline));
    } else {
      partial[(step - 1) % 2]->waitSend(remaining(deadline));
    }
  }
  if (op == ReduceOp::kAvg) divide_in_place(out, recv_count, dtype, n);
}

std::shared_ptr<Work> GlooGroup::do_gather(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kGather, .dtype = dtype, .root = root, .count = count};
  return enqueue(
      call, [this, in, out, count, dtype, root](Clock::time_point deadline, std::uint32_t tag) {
        if (count == 0) return;
        if (size() == 1) {
          std::memmove(out, in, count * data_type_size(dtype));
          return;
        }
        ::gloo::GatherOptions opts(context_);
        with_element_type(dtype, [&](auto* type) {
          using T = std::remove_pointer_t<decltype(type)>;
          opts.setInput(typed<T>(in), count);
          if (rank() == root)
            opts.setOutput(typed<T>(out), count * static_cast<std::size_t>(size()));
        });
        opts.setRoot(root);
        opts.setTag(tag);
        opts.setTimeout(remaining(deadline));
        ::gloo::gather(opts);
      });
}

std::shared_ptr<Work> GlooGroup::do_scatter(const void* in, void* out, std::size_t count,
                                            DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kScatter, .dtype = dtype, .root = root, .count = count};
  return enqueue(
      call, [this, in, out, count, dtype, root](Clock::time_point deadline, std::uint32_t tag) {
        if (count == 0) return;
        if (size() == 1) {
          std::memmove(out, in, count * data_type_size(dtype));
          return;
        }
        ::gloo::ScatterOptions opts(context_);
        with_element_type(dtype, [&](auto* type) {
          using T = std::remove_pointer_t<decltype(type)>;
          if (rank() == root) {
            // One buffer per destination, each a view into the caller's input: no copy.
            std::vector<T*> blocks;
            for (int r = 0; r < size(); ++r) {
              blocks.push_back(typed<T>(in) + static_cast<std::size_t>(r) * count);
            }
            opts.setInputs(blocks, count);
          }
          opts.setOutput(typed<T>(out), count);
        });
        opts.setRoot(root);
        opts.setTag(tag);
        opts.setTimeout(remaining(deadline));
        ::gloo::scatter(opts);
      });
}

std::shared_ptr<Work> GlooGroup::do_alltoall(const void* in, void* out, std::size_t count,
                                             DataType dtype) {
  const CallSignature call{.kind = OpKind::kAlltoall, .dtype = dtype, .count = count};
  return enqueue(call,
                 [this, in, out, count, dtype](Clock::time_point deadline, std::uint32_t tag) {
                   if (count == 0) return;
                   if (size() == 1) {
                     std::memmove(out, in, count * data_type_size(dtype));
                     return;
                   }
                   ::gloo::AlltoallOptions opts(context_);
                   with_element_type(dtype, [&](auto* type) {
                     using T = std::remove_pointer_t<decltype(type)>;
                     opts.setInput(typed<T>(in), count * static_cast<std::size_t>(size()));
                     opts.setOutput(typed<T>(out), count * static_cast<std::size_t>(size()));
                   });
                   opts.setTag(tag);
                   opts.setTimeout(remaining(deadline));
                   ::gloo::alltoall(opts);
                 });
}

std::shared_ptr<Work> GlooGroup::do_barrier() {
  const CallSignature call{.kind = OpKind::kBarrier};
  return enqueue(call, [this](Clock::time_point deadline, std::uint32_t tag) {
    if (size() == 1) return;
    ::gloo::BarrierOptions opts(context_);
    opts.setTag(tag);
    opts.setTimeout(remaining(deadline));
    ::gloo::barrier(opts);
  });
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
