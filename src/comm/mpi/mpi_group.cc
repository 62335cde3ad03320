#include "mpi_group_internal.h"

#include <sched.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <thread>
#include <utility>

#include "duration.h"
#include "mpi_runtime.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/mpi/mpi_group.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace mpi {
namespace {

using Clock = std::chrono::steady_clock;

// A poll loop spins on MPI_Test (which is what drives MPI's progress) for this long, then yields
// between tests (ranks may outnumber cores); past kSleepAfter the peer is late rather than busy
// and the loop sleeps between tests.
constexpr auto kSpinTime = std::chrono::microseconds(100);
constexpr auto kSleepAfter = std::chrono::seconds(1);
constexpr auto kSleep = std::chrono::milliseconds(1);
// Largest count one MPI call takes.
constexpr std::size_t kMaxCount = static_cast<std::size_t>(INT_MAX);
// From this many elements on, allreduce is tessera's ring over point-to-point messages; below,
// MPI_Iallreduce (whose latency-bound algorithms win for small buffers).
constexpr std::size_t kRingMinCount = 16384;

int as_int(std::size_t n) { return static_cast<int>(n); }

// Polls `count` requests until all complete (returns true; *code holds MPI_Testall's result) or
// `deadline` passes (returns false).
bool poll(MPI_Request* requests, int count, Clock::time_point deadline, int* code) {
  MpiRuntime& runtime = MpiRuntime::instance();
  const auto start = Clock::now();
  for (unsigned spins = 0;; ++spins) {
    int done = 0;
    {
      auto lock = runtime.lock();
      *code = MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
    }
    if (*code != MPI_SUCCESS || done != 0) return true;
    if (spins % 16 != 0) continue;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    const auto waited = now - start;
    if (waited >= kSleepAfter) {
      std::this_thread::sleep_for(kSleep);
    } else if (waited >= kSpinTime) {
      ::sched_yield();
    }
  }
}

bool poll(MPI_Request& request, Clock::time_point deadline, int* code) {
  return poll(&request, 1, deadline, code);
}

}  // namespace

MPI_Comm duplicate_comm(MPI_Comm parent, const std::string& name,
                        std::chrono::milliseconds timeout) {
  MpiRuntime& runtime = MpiRuntime::instance();
  const auto start = Clock::now();
  const std::string what = "creating MPI group " + name;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request request = MPI_REQUEST_NULL;
  {
    auto lock = runtime.lock();
    check_mpi(MPI_Comm_idup(parent, &comm, &request), "MPI_Comm_idup", what);
  }
  int code = MPI_SUCCESS;
  if (!poll(request, start + timeout, &code)) {
    runtime.abandon_finalize();
    throw TimeoutError(detail::concat(what,
                                      ": not every rank of the parent communicator joined "
                                      "within ",
                                      to_ms(Clock::now() - start), " ms (timeout ", timeout.count(),
                                      " ms); MPI cannot say which ranks are missing"));
  }
  check_mpi(code, "MPI_Comm_idup", what);
  auto lock = runtime.lock();
  // Errors come back as codes (turned into CommError) instead of aborting the job.
  check_mpi(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", what);
  return comm;
}

MpiGroup::MpiGroup(MPI_Comm comm, GroupOptions options)
    : ProcessGroup(
          [&] {
            int rank = 0;
            MPI_Comm_rank(comm, &rank);
            return rank;
          }(),
          [&] {
            int size = 0;
            MPI_Comm_size(comm, &size);
            return size;
          }(),
          std::move(options)),
      comm_(comm) {
  // The ring allreduce's messages travel on a communicator of their own, where no send/recv of
  // the caller's can match them.
  ring_comm_ = duplicate_comm(comm_, name() + " (ring)", this->options().timeout);
  worker_ = std::make_shared<OpWorker>("tessera-mpi");
}

MpiGroup::~MpiGroup() { shutdown_noexcept(); }

void MpiGroup::do_shutdown() {
  // Operations already issued run to completion (each within its deadline) first.
  if (worker_) worker_->stop();
  if (p2p_waiter_) p2p_waiter_->stop();
  const bool abandoned = abandoned_.load();
  int finalized = 0;
  MPI_Finalized(&finalized);
  // A communicator with a request left pending stays: freeing it would let MPI reuse it.
  if (comm_ != MPI_COMM_NULL && !abandoned && finalized == 0) {
    auto lock = MpiRuntime::instance().lock();
    MPI_Comm_free(&comm_);
    MPI_Comm_free(&ring_comm_);
  }
  comm_ = MPI_COMM_NULL;
  ring_comm_ = MPI_COMM_NULL;
}

void MpiGroup::check_int_count(const char* op, std::size_t count) const {
  if (count > kMaxCount) {
    throw ValueError(detail::concat(op, " on group ", name(), ": ", count,
                                    " elements exceed what one MPI call takes (INT_MAX)"));
  }
}

std::shared_ptr<Work> MpiGroup::enqueue(const CallSignature& call, Body body) {
  const std::uint64_t seq = ++seq_;
  auto work = std::make_shared<AsyncWork>(describe_op(call.kind, seq, name()));
  post_work(
      worker_, work,
      [this, seq, call, body = std::move(body), work] { run(seq, call, body, *work); },
      options().timeout);
  return work;
}

void MpiGroup::run(std::uint64_t seq, const CallSignature& call, const Body& body,
                   AsyncWork& work) {
  Op op;
  op.name = describe_op(call.kind, seq, name());
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work.fail(std::make_exception_ptr(
        CommError(detail::concat(op.name, ": not run: the group failed earlier: ", reason))));
    return;
  }
  op.start = Clock::now();
  op.deadline = op.start + options().timeout;
  try {
    if (options().check_consistency && size() > 1) check_consistency(seq, call, op);
    body(op);
    work.complete();
  } catch (const CollectiveMismatchError&) {
    // Every rank saw the same signatures and skipped the collective: the group stays usable.
    work.fail(std::current_exception());
  } catch (const Error& e) {
    failure_.record(e.what());
    work.fail(std::current_exception());
  } catch (const std::exception& e) {
    const std::string message = op.name + ": " + e.what();
    failure_.record(message);
    work.fail(std::make_exception_ptr(CommError(message)));
  }
}

void MpiGroup::wait_request(MPI_Request& request, const char* call, const Op& op) {
  wait_requests(&request, 1, call, op);
}

void MpiGroup::wait_requests(MPI_Request* requests, int count, const char* call, const Op& op) {
  int code = MPI_SUCCESS;
  if (poll(requests, count, op.deadline, &code)) {
    check_mpi(code, call, op.name);
    return;
  }
  // The request cannot be cancelled (MPI has no cancel for collectives): it stays with MPI.
  abandoned_.store(true);
  MpiRuntime::instance().abandon_finalize();
  throw TimeoutError(detail::concat(
      op.name, ": not completed within ", to_ms(Clock::now() - op.start), " ms (timeout ",
      options().timeout.count(),
      " ms); MPI cannot say which ranks did not arrive. The MPI request stays pending (MPI may "
      "still write into this operation's buffers): end the process, and mpirun ends the job"));
}

void MpiGroup::run_request(const char* call, const Op& op,
                           const std::function<int(MPI_Request* request)>& start) {
  MPI_Request request = MPI_REQUEST_NULL;
  {
    auto lock = MpiRuntime::instance().lock();
    check_mpi(start(&request), call, op.name);
  }
  wait_request(request, call, op);
}

void MpiGroup::check_consistency(std::uint64_t seq, const CallSignature& call, const Op& op) {
  const CallSignature::Wire mine = call.encode();
  std::vector<std::byte> all(CallSignature::kWireSize * static_cast<std::size_t>(size()));
  run_request("MPI_Iallgather", op, [&](MPI_Request* request) {
    return MPI_Iallgather(mine.data(), as_int(mine.size()), MPI_BYTE, all.data(),
                          as_int(mine.size()), MPI_BYTE, comm_, request);
  });
  const CallSignature first = CallSignature::decode(all.data());
  for (int r = 1; r < size(); ++r) {
    const CallSignature theirs =
        CallSignature::decode(all.data() + static_cast<std::size_t>(r) * CallSignature::kWireSize);
    if (theirs == first) continue;
    throw CollectiveMismatchError(
        detail::concat(op.name, ": collectives differ across ranks: rank ", r, " issued ",
                       theirs.describe(), " as collective #", seq, " where rank 0 issued ",
                       first.describe(), " (found by the consistency check; not run)"));
  }
}

std::shared_ptr<Work> MpiGroup::do_allreduce(void* data, std::size_t count, DataType dtype,
                                             ReduceOp op) {
  const CallSignature call{.kind = OpKind::kAllreduce, .dtype = dtype, .op = op, .count = count};
  return enqueue(call, [this, data, count, dtype, op](const Op& o) {
    if (count == 0) return;
    auto* bytes = static_cast<std::byte*>(data);
    if (size() > 1 && count >= kRingMinCount && count <= kMaxCount) {
      return ring_allreduce(bytes, count, dtype, op, o);
    }
    MpiRuntime& runtime = MpiRuntime::instance();
    const std::size_t esz = data_type_size(dtype);
    // In place on the caller's buffer; pieces of at most INT_MAX elements.
    for (std::size_t off = 0; off < count; off += kMaxCount) {
      const std::size_t n = std::min(kMaxCount, count - off);
      run_request("MPI_Iallreduce", o, [&](MPI_Request* request) {
        return MPI_Iallreduce(MPI_IN_PLACE, bytes + off * esz, as_int(n), runtime.datatype(dtype),
                              runtime.op(dtype, op), comm_, request);
      });
    }
    if (op == ReduceOp::kAvg) divide_in_place(data, count, dtype, size());
  });
}

// Ring reduce-scatter then ring allgather over MPI_Isend/Irecv: each rank sends and receives
// 2(n-1)/n of the buffer (the bandwidth optimum), reduces with tessera's kernels in place, and
// received blocks of the allgather land straight in the caller's buffer. MPI's non-blocking
// MPI_Iallreduce (libnbc) reached only 35-45% of the blocking MPI_Allreduce at 1-16 MiB here.
void MpiGroup::ring_allreduce(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                              const Op& o) {
  MpiRuntime& runtime = MpiRuntime::instance();
  const int n = size();
  const int r = rank();
  const std::size_t esz = data_type_size(dtype);
  const ReduceFunction fn = reduce_function(dtype, op);
  const MPI_Datatype type = runtime.datatype(dtype);
  const std::size_t per = (count + static_cast<std::size_t>(n) - 1) / static_cast<std::size_t>(n);
  auto begin = [&](int j) { return std::min(static_cast<std::size_t>(j) * per, count); };
  auto length = [&](int j) { return std::min(begin(j) + per, count) - begin(j); };
  auto block = [&](int j) { return data + begin(j) * esz; };
  const int right = (r + 1) % n;
  const int left = (r + n - 1) % n;
  if (scratch_.size() < per * esz) scratch_.resize(per * esz);
  auto exchange = [&](const char* what, const std::byte* send, std::size_t send_count,
                      std::byte* recv, std::size_t recv_count) {
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    {
      auto lock = runtime.lock();
      check_mpi(MPI_Irecv(recv, as_int(recv_count), type, left, 0, ring_comm_, &requests[0]),
                "MPI_Irecv", o.name);
      check_mpi(MPI_Isend(send, as_int(send_count), type, right, 0, ring_comm_, &requests[1]),
                "MPI_Isend", o.name);
    }
    wait_requests(requests, 2, what, o);
  };
  // Step s: pass the partial sum of block r - s to the right; the one of block r - s - 1 comes
  // from the left and takes this rank's share. Afterwards block r + 1 is complete here.
  for (int s = 0; s < n - 1; ++s) {
    const int send_block = (r - s + n) % n;
    const int recv_block = (r - s - 1 + 2 * n) % n;
    exchange("ring reduce-scatter", block(send_block), length(send_block), scratch_.data(),
             length(recv_block));
    fn(block(recv_block), block(recv_block), scratch_.data(), length(recv_block));
  }
  const int own = (r + 1) % n;
  if (op == ReduceOp::kAvg) divide_in_place(block(own), length(own), dtype, n);
  // Step s: pass complete block r + 1 - s to the right; block r - s arrives from the left.
  for (int s = 0; s < n - 1; ++s) {
    const int send_block = (r + 1 - s + n) % n;
    const int recv_block = (r - s + n) % n;
    exchange("ring allgather", block(send_block), length(send_block), block(recv_block),
             length(recv_block));
  }
}

std::shared_ptr<Work> MpiGroup::do_broadcast(void* data, std::size_t count, DataType dtype,
                                             int root) {
  const CallSignature call{
      .kind = OpKind::kBroadcast, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, root](const Op& o) {
    const std::size_t esz = data_type_size(dtype);
    for (std::size_t off = 0; off < count; off += kMaxCount) {
      const std::size_t n = std::min(kMaxCount, count - off);
      run_request("MPI_Ibcast", o, [&](MPI_Request* request) {
        return MPI_Ibcast(static_cast<std::byte*>(data) + off * esz, as_int(n),
                          MpiRuntime::instance().datatype(dtype), root, comm_, request);
      });
    }
  });
}

std::shared_ptr<Work> MpiGroup::do_reduce(void* data, std::size_t count, DataType dtype,
                                          ReduceOp op, int root) {
  const CallSignature call{
      .kind = OpKind::kReduce, .dtype = dtype, .op = op, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, op, root](const Op& o) {
    if (count == 0) return;
    MpiRuntime& runtime = MpiRuntime::instance();
    const std::size_t esz = data_type_size(dtype);
    const bool is_root = rank() == root;
    for (std::size_t off = 0; off < count; off += kMaxCount) {
      const std::size_t n = std::min(kMaxCount, count - off);
      std::byte* piece = static_cast<std::byte*>(data) + off * esz;
      run_request("MPI_Ireduce", o, [&](MPI_Request* request) {
        return MPI_Ireduce(is_root ? MPI_IN_PLACE : piece, is_root ? piece : nullptr, as_int(n),
                           runtime.datatype(dtype), runtime.op(dtype, op), root, comm_, request);
      });
    }
    if (op == ReduceOp::kAvg && is_root) divide_in_place(data, count, dtype, size());
  });
}

std::shared_ptr<Work> MpiGroup::do_allgather(const void* in, void* out, std::size_t count,
                                             DataType dtype) {
  check_int_count("allgather", count);
  const CallSignature call{.kind = OpKind::kAllgather, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](const Op& o) {
    if (count == 0) return;
    const MPI_Datatype type = MpiRuntime::instance().datatype(dtype);
    const auto* own_block = static_cast<const std::byte*>(out) +
                            static_cast<std::size_t>(rank()) * count * data_type_size(dtype);
    run_request("MPI_Iallgather", o, [&](MPI_Request* request) {
      return MPI_Iallgather(in == own_block ? MPI_IN_PLACE : in, as_int(count), type, out,
                            as_int(count), type, comm_, request);
    });
  });
}

std::shared_ptr<Work> MpiGroup::do_allgatherv(const void* in, void* out,
                                              const std::vector<std::size_t>& counts,
                                              DataType dtype) {
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  check_int_count("allgatherv", total);
  const CallSignature call{.kind = OpKind::kAllgatherv,
                           .dtype = dtype,
                           .count = total,
                           .counts_hash = hash_counts(counts)};
  std::vector<int> int_counts;
  std::vector<int> displacements;
  for (std::size_t c : counts) {
    displacements.push_back(int_counts.empty() ? 0 : displacements.back() + int_counts.back());
    int_counts.push_back(as_int(c));
  }
  return enqueue(call, [this, in, out, total, dtype, int_counts = std::move(int_counts),
                        displacements = std::move(displacements)](const Op& o) {
    if (total == 0) return;
    const MPI_Datatype type = MpiRuntime::instance().datatype(dtype);
    const auto r = static_cast<std::size_t>(rank());
    const auto* own_block = static_cast<const std::byte*>(out) +
                            static_cast<std::size_t>(displacements[r]) * data_type_size(dtype);
    run_request("MPI_Iallgatherv", o, [&](MPI_Request* request) {
      return MPI_Iallgatherv(in == own_block ? MPI_IN_PLACE : in, int_counts[r], type, out,
                             int_counts.data(), displacements.data(), type, comm_, request);
    });
  });
}

std::shared_ptr<Work> MpiGroup::do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                                  DataType dtype, ReduceOp op) {
  check_int_count("reduce_scatter", recv_count);
  const CallSignature call{
      .kind = OpKind::kReduceScatter, .dtype = dtype, .op = op, .count = recv_count};
  return enqueue(call, [this, in, out, recv_count, dtype, op](const Op& o) {
    if (recv_count == 0) return;
    MpiRuntime& runtime = MpiRuntime::instance();
    run_request("MPI_Ireduce_scatter_block", o, [&](MPI_Request* request) {
      return MPI_Ireduce_scatter_block(in, out, as_int(recv_count), runtime.datatype(dtype),
                                       runtime.op(dtype, op), comm_, request);
    });
    if (op == ReduceOp::kAvg) divide_in_place(out, recv_count, dtype, size());
  });
}

std::shared_ptr<Work> MpiGroup::do_gather(const void* in, void* out, std::size_t count,
                                          DataType dtype, int root) {
  check_int_count("gather", count);
  const CallSignature call{.kind = OpKind::kGather, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](const Op& o) {
    if (count == 0) return;
    const MPI_Datatype type = MpiRuntime::instance().datatype(dtype);
    run_request("MPI_Igather", o, [&](MPI_Request* request) {
      return MPI_Igather(in, as_int(count), type, rank() == root ? out : nullptr, as_int(count),
                         type, root, comm_, request);
    });
  });
}

std::shared_ptr<Work> MpiGroup::do_scatter(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) {
  check_int_count("scatter", count);
  const CallSignature call{.kind = OpKind::kScatter, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](const Op& o) {
    if (count == 0) return;
    const MPI_Datatype type = MpiRuntime::instance().datatype(dtype);
    run_request("MPI_Iscatter", o, [&](MPI_Request* request) {
      return MPI_Iscatter(rank() == root ? in : nullptr, as_int(count), type, out, as_int(count),
                          type, root, comm_, request);
    });
  });
}

std::shared_ptr<Work> MpiGroup::do_alltoall(const void* in, void* out, std::size_t count,
                                            DataType dtype) {
  check_int_count("alltoall", count);
  const CallSignature call{.kind = OpKind::kAlltoall, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](const Op& o) {
    if (count == 0) return;
    const MPI_Datatype type = MpiRuntime::instance().datatype(dtype);
    run_request("MPI_Ialltoall", o, [&](MPI_Request* request) {
      return MPI_Ialltoall(in, as_int(count), type, out, as_int(count), type, comm_, request);
    });
  });
}

std::shared_ptr<Work> MpiGroup::do_barrier() {
  const CallSignature call{.kind = OpKind::kBarrier};
  return enqueue(call, [this](const Op& o) {
    run_request("MPI_Ibarrier", o,
                [&](MPI_Request* request) { return MPI_Ibarrier(comm_, request); });
  });
}

std::shared_ptr<Work> MpiGroup::do_send(const void* data, std::size_t count, DataType dtype,
                                        int dst, std::uint32_t tag) {
  return post_p2p(true, const_cast<void*>(data), count, dtype, dst, tag);
}

std::shared_ptr<Work> MpiGroup::do_recv(void* data, std::size_t count, DataType dtype, int src,
                                        std::uint32_t tag) {
  return post_p2p(false, data, count, dtype, src, tag);
}

std::shared_ptr<Work> MpiGroup::post_p2p(bool sending, void* data, std::size_t count,
                                         DataType dtype, int peer, std::uint32_t tag) {
  MpiRuntime& runtime = MpiRuntime::instance();
  const std::string what = detail::concat(sending ? "send #" : "recv #", ++p2p_seq_,
                                          sending ? " to rank " : " from rank ", peer, " (tag ",
                                          tag, ") on group ", name());
  check_int_count(sending ? "send" : "recv", count);
  int* tag_ub = nullptr;
  int has_tag_ub = 0;
  MPI_Comm_get_attr(comm_, MPI_TAG_UB, &tag_ub, &has_tag_ub);
  const long long max_tag = has_tag_ub != 0 && tag_ub != nullptr ? *tag_ub : 32767;
  if (static_cast<long long>(tag) > max_tag) {
    throw ValueError(detail::concat(what, ": tag ", tag, " exceeds MPI_TAG_UB (", max_tag, ")"));
  }
  auto work = std::make_shared<AsyncWork>(what);
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work->fail(std::make_exception_ptr(
        CommError(detail::concat(what, ": not run: the group failed earlier: ", reason))));
    return work;
  }
  auto request = std::make_shared<MPI_Request>(MPI_REQUEST_NULL);
  int code = MPI_SUCCESS;
  {
    auto lock = runtime.lock();
    // Posting does not block: the transfer proceeds once the peer posts the matching call.
    code = sending ? MPI_Isend(data, as_int(count), runtime.datatype(dtype), peer,
                               static_cast<int>(tag), comm_, request.get())
                   : MPI_Irecv(data, as_int(count), runtime.datatype(dtype), peer,
                               static_cast<int>(tag), comm_, request.get());
  }
  if (code != MPI_SUCCESS) {
    work->fail(std::make_exception_ptr(
        CommError(what + ": " + mpi_error(sending ? "MPI_Isend" : "MPI_Irecv", code))));
    return work;
  }
  if (!p2p_waiter_) p2p_waiter_ = std::make_unique<OpWorker>("tessera-mpi-p2p");
  const auto start = Clock::now();
  p2p_waiter_->post([this, request, work, what, sending, peer, start] {
    int result = MPI_SUCCESS;
    if (poll(*request, start + options().timeout, &result)) {
      if (result == MPI_SUCCESS) {
        work->complete();
      } else {
        const std::string message = what + ": " + mpi_error("MPI_Test", result);
        failure_.record(message);
        work->fail(std::make_exception_ptr(CommError(message)));
      }
      return;
    }
    // A point-to-point request can be cancelled, unlike a collective one.
    {
      auto lock = MpiRuntime::instance().lock();
      MPI_Cancel(request.get());
      MPI_Request_free(request.get());
    }
    const std::string message = detail::concat(
        what, ": no matching ", sending ? "recv on rank " : "send from rank ", peer, " within ",
        to_ms(Clock::now() - start), " ms (timeout ", options().timeout.count(), " ms)");
    failure_.record(message);
    work->fail(std::make_exception_ptr(TimeoutError(message)));
  });
  return work;
}

std::unique_ptr<ProcessGroup> MpiGroup::do_split(int color, int key, std::string name) {
  const int index = ++splits_;
  auto result = std::make_shared<MPI_Comm>(MPI_COMM_NULL);
  const CallSignature call{.kind = OpKind::kSplit};
  auto work = enqueue(call, [this, color, key, result](const Op& o) {
    // Every rank must arrive before the blocking MPI_Comm_split: a non-blocking allgather first,
    // so a rank that never comes is a timeout here, not a hang there.
    std::array<int, 2> mine = {color, key};
    std::vector<int> all(2 * static_cast<std::size_t>(size()));
    run_request("MPI_Iallgather", o, [&](MPI_Request* request) {
      return MPI_Iallgather(mine.data(), 2, MPI_INT, all.data(), 2, MPI_INT, comm_, request);
    });
    auto lock = MpiRuntime::instance().lock();
    check_mpi(MPI_Comm_split(comm_, color == kNoColor ? MPI_UNDEFINED : color, key, result.get()),
              "MPI_Comm_split", o.name);
    if (*result != MPI_COMM_NULL) {
      check_mpi(MPI_Comm_set_errhandler(*result, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler",
                o.name);
    }
  });
  work->wait();
  if (*result == MPI_COMM_NULL) return nullptr;
  GroupOptions child = options();
  child.name =
      name.empty() ? detail::concat(this->name(), "/split", index, ":", color) : std::move(name);
  return std::make_unique<MpiGroup>(*result, std::move(child));
}

}  // namespace mpi

std::unique_ptr<ProcessGroup> make_mpi_group(GroupOptions options) {
  if (options.name.empty()) throw ValueError("make_mpi_group: empty group name");
  if (options.timeout.count() <= 0) {
    throw ValueError(detail::concat("make_mpi_group: timeout ", options.timeout.count(),
                                    " ms must be positive"));
  }
  MPI_Comm comm = mpi::duplicate_comm(MPI_COMM_WORLD, options.name, options.timeout);
  return std::make_unique<mpi::MpiGroup>(comm, std::move(options));
}

}  // namespace tessera::comm
