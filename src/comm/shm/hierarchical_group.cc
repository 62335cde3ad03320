#include "tessera/comm/shm/hierarchical_group.h"

#include <array>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "async_work.h"
#include "call_signature.h"
#include "first_failure.h"
#include "op_worker.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace shm {
namespace {

// Where every rank of the global group lives.
struct Hosts {
  std::vector<int> host_of;        // [global rank] -> host index
  std::vector<int> local_rank_of;  // [global rank] -> local rank
  int count = 0;                   // hosts
};

// From every rank's (local rank, local size), in global rank order; throws ValueError when a
// host's ranks are not consecutive in local rank order.
Hosts map_hosts(const std::vector<std::int64_t>& pairs, const std::string& group) {
  Hosts hosts;
  const std::size_t n = pairs.size() / 2;
  std::int64_t expected_local = 0;
  std::int64_t host_size = 0;
  for (std::size_t r = 0; r < n; ++r) {
    const std::int64_t local = pairs[2 * r];
    const std::int64_t size = pairs[2 * r + 1];
    if (local == 0) {
      if (expected_local != host_size) {
        throw ValueError(detail::concat("hierarchical group over ", group, ": rank ", r,
                                        " starts a new host (local rank 0) but ",
                                        "the previous host has only ", expected_local, " of its ",
                                        host_size, " ranks before it"));
      }
      ++hosts.count;
      expected_local = 0;
      host_size = size;
    }
    if (local != expected_local || size != host_size || hosts.count == 0) {
      throw ValueError(detail::concat(
          "hierarchical group over ", group, ": rank ", r, " has local rank ", local, " of ", size,
          " where the global order puts local rank ", expected_local, " of ", host_size,
          ": each host's ranks must be consecutive, in local rank order"));
    }
    hosts.host_of.push_back(hosts.count - 1);
    hosts.local_rank_of.push_back(static_cast<int>(local));
    ++expected_local;
  }
  if (expected_local != host_size) {
    throw ValueError(detail::concat("hierarchical group over ", group, ": the last host has ",
                                    expected_local, " of its ", host_size, " ranks"));
  }
  return hosts;
}

// The same error type as `error`, with `prefix` in front of its message.
std::exception_ptr with_prefix(const std::string& prefix, std::exception_ptr error) {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const CollectiveMismatchError& e) {
    return std::make_exception_ptr(CollectiveMismatchError(prefix + e.what()));
  } catch (const TimeoutError& e) {
    return std::make_exception_ptr(TimeoutError(prefix + e.what()));
  } catch (const CommError& e) {
    return std::make_exception_ptr(CommError(prefix + e.what()));
  } catch (const ValueError& e) {
    return std::make_exception_ptr(ValueError(prefix + e.what()));
  } catch (const std::exception& e) {
    return std::make_exception_ptr(CommError(prefix + e.what()));
  }
}

// See make_hierarchical_group() for the contract.
class HierarchicalGroup final : public ProcessGroup {
 public:
  HierarchicalGroup(std::unique_ptr<ProcessGroup> global, std::unique_ptr<ProcessGroup> local,
                    std::unique_ptr<ProcessGroup> leaders, Hosts hosts)
      : ProcessGroup(global->rank(), global->size(), global->options()),
        global_(std::move(global)),
        local_(std::move(local)),
        leaders_(std::move(leaders)),
        hosts_(std::move(hosts)),
        worker_(std::make_shared<OpWorker>("tessera-hier")) {}

  ~HierarchicalGroup() override { shutdown_noexcept(); }

 protected:
  std::shared_ptr<Work> do_allreduce(void* data, std::size_t count, DataType dtype,
                                     ReduceOp op) override {
    return enqueue(OpKind::kAllreduce,
                   [this, data, count, dtype, op] { allreduce_stages(data, count, dtype, op); });
  }

  std::shared_ptr<Work> do_broadcast(void* data, std::size_t count, DataType dtype,
                                     int root) override {
    return enqueue(OpKind::kBroadcast, [this, data, count, dtype, root] {
      const auto r = static_cast<std::size_t>(root);
      const int root_host = hosts_.host_of[r];
      const bool on_root_host = hosts_.host_of[static_cast<std::size_t>(rank())] == root_host;
      if (on_root_host && local_->size() > 1) {
        local_->broadcast(data, count, dtype, hosts_.local_rank_of[r])->wait();
      }
      if (leaders_ && leaders_->size() > 1) {
        leaders_->broadcast(data, count, dtype, root_host)->wait();
      }
      if (!on_root_host && local_->size() > 1) local_->broadcast(data, count, dtype, 0)->wait();
    });
  }

  std::shared_ptr<Work> do_reduce(void* data, std::size_t count, DataType dtype, ReduceOp op,
                                  int /*root*/) override {
    // Every rank ends with the result: the others' buffers are scratch space by contract.
    return enqueue(OpKind::kReduce,
                   [this, data, count, dtype, op] { allreduce_stages(data, count, dtype, op); });
  }

  std::shared_ptr<Work> do_barrier() override {
    return enqueue(OpKind::kBarrier, [this] {
      if (local_->size() > 1) local_->barrier()->wait();
      if (leaders_ && leaders_->size() > 1) leaders_->barrier()->wait();
      if (local_->size() > 1) local_->barrier()->wait();
    });
  }

  std::shared_ptr<Work> do_allgather(const void* in, void* out, std::size_t count,
                                     DataType dtype) override {
    return on_global(OpKind::kAllgather,
                     [=, this] { return global_->allgather(in, out, count, dtype); });
  }

  std::shared_ptr<Work> do_allgatherv(const void* in, void* out,
                                      const std::vector<std::size_t>& counts,
                                      DataType dtype) override {
    const std::size_t in_count = counts[static_cast<std::size_t>(rank())];
    return on_global(OpKind::kAllgatherv,
                     [=, this] { return global_->allgatherv(in, in_count, out, counts, dtype); });
  }

  std::shared_ptr<Work> do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                          DataType dtype, ReduceOp op) override {
    return on_global(OpKind::kReduceScatter,
                     [=, this] { return global_->reduce_scatter(in, out, recv_count, dtype, op); });
  }

  std::shared_ptr<Work> do_gather(const void* in, void* out, std::size_t count, DataType dtype,
                                  int root) override {
    return on_global(OpKind::kGather,
                     [=, this] { return global_->gather(in, out, count, dtype, root); });
  }

  std::shared_ptr<Work> do_scatter(const void* in, void* out, std::size_t count, DataType dtype,
                                   int root) override {
    return on_global(OpKind::kScatter,
                     [=, this] { return global_->scatter(in, out, count, dtype, root); });
  }

  std::shared_ptr<Work> do_alltoall(const void* in, void* out, std::size_t count,
                                    DataType dtype) override {
    return on_global(OpKind::kAlltoall,
                     [=, this] { return global_->alltoall(in, out, count, dtype); });
  }

  // Posted at once on the global group, independent of the collectives (ProcessGroup's rule).
  std::shared_ptr<Work> do_send(const void* data, std::size_t count, DataType dtype, int dst,
                                std::uint32_t tag) override {
    std::lock_guard<std::mutex> lock(global_mutex_);
    return global_->send(data, count, dtype, dst, tag);
  }

  std::shared_ptr<Work> do_recv(void* data, std::size_t count, DataType dtype, int src,
                                std::uint32_t tag) override {
    std::lock_guard<std::mutex> lock(global_mutex_);
    return global_->recv(data, count, dtype, src, tag);
  }

  std::unique_ptr<ProcessGroup> do_split(int color, int key, std::string name) override {
    auto result = std::make_shared<std::unique_ptr<ProcessGroup>>();
    auto work = enqueue(OpKind::kSplit, [this, color, key, name = std::move(name), result] {
      std::lock_guard<std::mutex> lock(global_mutex_);
      *result = global_->split(color, key, name);
    });
    work->wait();
    return std::move(*result);
  }

  void do_shutdown() override {
    worker_->stop();
    std::exception_ptr first;
    for (auto* group : {&leaders_, &local_, &global_}) {
      if (!*group) continue;
      try {
        (*group)->shutdown();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

 private:
  // Reduce within the host, allreduce across the hosts' leaders, broadcast within the host.
  void allreduce_stages(void* data, std::size_t count, DataType dtype, ReduceOp op) {
    const ReduceOp stage_op = op == ReduceOp::kAvg ? ReduceOp::kSum : op;
    if (local_->size() > 1) local_->reduce(data, count, dtype, stage_op, 0)->wait();
    if (leaders_) {
      if (leaders_->size() > 1) leaders_->allreduce(data, count, dtype, stage_op)->wait();
      if (op == ReduceOp::kAvg) divide_in_place(data, count, dtype, size());
    }
    if (local_->size() > 1) local_->broadcast(data, count, dtype, 0)->wait();
  }

  std::shared_ptr<Work> enqueue(OpKind kind, std::function<void()> body) {
    const std::string what = describe_op(kind, ++seq_, name());
    auto work = std::make_shared<AsyncWork>(what);
    auto run = [this, what, body = std::move(body), work] {
      if (std::string reason = failure_.reason(); !reason.empty()) {
        work->fail(std::make_exception_ptr(
            CommError(detail::concat(what, ": not run: the group failed earlier: ", reason))));
        return;
      }
      try {
        body();
        work->complete();
      } catch (const std::exception& e) {
        std::exception_ptr error = with_prefix(what + ": ", std::current_exception());
        if (dynamic_cast<const CollectiveMismatchError*>(&e) == nullptr) {
          failure_.record(what + ": " + e.what());
        }
        work->fail(std::move(error));
      }
    };
    post_work(worker_, work, std::move(run), options().timeout);
    return work;
  }

  // Runs `issue` (an operation of the global group) in issue order with the others.
  std::shared_ptr<Work> on_global(OpKind kind, std::function<std::shared_ptr<Work>()> issue) {
    return enqueue(kind, [this, issue = std::move(issue)] {
      std::shared_ptr<Work> work;
      {
        std::lock_guard<std::mutex> lock(global_mutex_);
        work = issue();
      }
      work->wait();
    });
  }

  std::unique_ptr<ProcessGroup> global_;
  std::unique_ptr<ProcessGroup> local_;
  std::unique_ptr<ProcessGroup> leaders_;
  const Hosts hosts_;
  // Two threads issue on the global group: the worker (collectives) and the caller (send/recv).
  std::mutex global_mutex_;
  std::uint64_t seq_ = 0;  // caller thread only
  FirstFailure failure_;
  std::shared_ptr<OpWorker> worker_;
};

// Every rank's (local rank, local size), through the global group.
std::vector<std::int64_t> exchange_locals(ProcessGroup& global, int local_rank, int local_size) {
  const std::array<std::int64_t, 2> mine = {local_rank, local_size};
  std::vector<std::int64_t> all(2 * static_cast<std::size_t>(global.size()));
  global.allgather(mine.data(), all.data(), 2, DataType::kInt64)->wait();
  return all;
}

}  // namespace
}  // namespace shm

std::unique_ptr<ProcessGroup> make_hierarchical_group(std::unique_ptr<ProcessGroup> global,
                                                      std::unique_ptr<ProcessGroup> local,
                                                      std::unique_ptr<ProcessGroup> leaders) {
  if (!global || !local) throw ValueError("make_hierarchical_group: null global or local group");
  const std::string name = global->name();
  const shm::Hosts hosts =
      shm::map_hosts(shm::exchange_locals(*global, local->rank(), local->size()), name);
  const int host = hosts.host_of[static_cast<std::size_t>(global->rank())];
  if ((local->rank() == 0) != (leaders != nullptr)) {
    throw ValueError(detail::concat("make_hierarchical_group over ", name, ": rank ",
                                    global->rank(), " (local rank ", local->rank(), ") ",
                                    leaders ? "has" : "lacks",
                                    " a leaders group: exactly the local rank 0s have one"));
  }
  if (leaders && (leaders->rank() != host || leaders->size() != hosts.count)) {
    throw ValueError(detail::concat("make_hierarchical_group over ", name, ": the leader of host ",
                                    host, " is rank ", leaders->rank(), " of ", leaders->size(),
                                    " in the leaders group; expected rank ", host, " of ",
                                    hosts.count));
  }
  return std::make_unique<shm::HierarchicalGroup>(std::move(global), std::move(local),
                                                  std::move(leaders), hosts);
}

std::unique_ptr<ProcessGroup> make_hierarchical_group(std::unique_ptr<ProcessGroup> global,
                                                      std::shared_ptr<Store> store, int local_rank,
                                                      int local_size, ShmOptions shm_options) {
  if (!global) throw ValueError("make_hierarchical_group: null global group");
  if (local_size < 1 || local_rank < 0 || local_rank >= local_size) {
    throw ValueError(detail::concat("make_hierarchical_group: local rank ", local_rank,
                                    " is not in [0, ", local_size, ")"));
  }
  const shm::Hosts hosts =
      shm::map_hosts(shm::exchange_locals(*global, local_rank, local_size), global->name());
  const int host = hosts.host_of[static_cast<std::size_t>(global->rank())];
  GroupOptions local_options = global->options();
  local_options.name = detail::concat(global->name(), "/host", host);
  auto local = make_shm_group(std::move(store), local_rank, local_size, local_options,
                              std::move(shm_options));
  auto leaders =
      global->split(local_rank == 0 ? 0 : kNoColor, global->rank(), global->name() + "/leaders");
  return make_hierarchical_group(std::move(global), std::move(local), std::move(leaders));
}

}  // namespace tessera::comm
