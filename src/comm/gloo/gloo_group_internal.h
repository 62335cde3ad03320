#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "async_work.h"
#include "call_signature.h"
#include "first_failure.h"
#include "op_worker.h"
#include "progress_tracker.h"
#include "tessera/comm/process_group.h"
#include "tessera/comm/store.h"

namespace gloo {
class Context;
namespace transport {
class Device;
}  // namespace transport
}  // namespace gloo

namespace tessera::comm::gloo {

// Slot prefixes for our own point-to-point traffic, clear of Gloo's collective prefixes
// (0x01..0x08 in gloo/types.h).
constexpr std::uint8_t kSendRecvSlotPrefix = 0x40;
constexpr std::uint8_t kReduceScatterSlotPrefix = 0x41;

// Time left before `deadline`, at least 1 ms (Gloo rejects a zero timeout).
inline std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// ProcessGroup over one Gloo context (a full mesh of TCP pairs). Collectives run on `worker_`
// in issue order; send/recv are posted on the caller's thread and waited for on `p2p_waiter_`.
// Every collective records its sequence number in the store through `tracker_`, so a failure
// can say who did not arrive. See make_gloo_group() for the public contract.
class GlooGroup final : public ProcessGroup {
 public:
  struct Setup {
    std::shared_ptr<Store> store;
    // Store keys of this group start with it: "comm/world", "comm/world/split1/0".
    std::string key_prefix;
    int rank = 0;
    int size = 1;
    GroupOptions options;
    // Shared by a group and its sub-groups (one listening socket and event loop per process).
    std::shared_ptr<::gloo::transport::Device> device;
  };

  // Meets the other ranks through the store and connects to them; throws TimeoutError naming the
  // ranks that did not join, CommError when connecting fails.
  explicit GlooGroup(Setup setup);
  ~GlooGroup() override;

 protected:
  std::shared_ptr<Work> do_allreduce(void* data, std::size_t count, DataType dtype,
                                     ReduceOp op) override;
  std::shared_ptr<Work> do_broadcast(void* data, std::size_t count, DataType dtype,
                                     int root) override;
  std::shared_ptr<Work> do_reduce(void* data, std::size_t count, DataType dtype, ReduceOp op,
                                  int root) override;
  std::shared_ptr<Work> do_allgather(const void* in, void* out, std::size_t count,
                                     DataType dtype) override;
  std::shared_ptr<Work> do_allgatherv(const void* in, void* out,
                                      const std::vector<std::size_t>& counts,
                                      DataType dtype) override;
  std::shared_ptr<Work> do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                          DataType dtype, ReduceOp op) override;
  std::shared_ptr<Work> do_gather(const void* in, void* out, std::size_t count, DataType dtype,
                                  int root) override;
  std::shared_ptr<Work> do_scatter(const void* in, void* out, std::size_t count, DataType dtype,
                                   int root) override;
  std::shared_ptr<Work> do_alltoall(const void* in, void* out, std::size_t count,
                                    DataType dtype) override;
  std::shared_ptr<Work> do_send(const void* data, std::size_t count, DataType dtype, int dst,
                                std::uint32_t tag) override;
  std::shared_ptr<Work> do_recv(void* data, std::size_t count, DataType dtype, int src,
                                std::uint32_t tag) override;
  std::shared_ptr<Work> do_barrier() override;
  std::unique_ptr<ProcessGroup> do_split(int color, int key, std::string name) override;
  void do_shutdown() override;

 private:
  using Clock = std::chrono::steady_clock;
  // Runs one collective's transfers before `deadline`; `tag` is unique to this operation.
  using Body = std::function<void(Clock::time_point deadline, std::uint32_t tag)>;

  std::shared_ptr<Work> enqueue(const CallSignature& call, Body body);
  void run(std::uint64_t seq, const CallSignature& call, const Body& body, AsyncWork& work);
  void check_consistency(std::uint64_t seq, const CallSignature& call, Clock::time_point deadline);
  // Explains why collective `seq` failed, from every rank's progress record: a call that differs
  // (CollectiveMismatchError), ranks that did not arrive, a timeout here or at a peer
  // (TimeoutError), else the transport's error (CommError). Sets *message and *timed_out.
  std::exception_ptr diagnose(std::uint64_t seq, const CallSignature& call, Clock::time_point start,
                              const std::string& cause, std::string* message, bool* timed_out);
  std::shared_ptr<Work> post_p2p(OpKind kind, void* data, std::size_t count, DataType dtype,
                                 int peer, std::uint32_t tag);
  void reduce_scatter_ring(const void* in, void* out, std::size_t recv_count, DataType dtype,
                           ReduceOp op, Clock::time_point deadline, std::uint32_t tag);
  // Empty while the group is healthy; else the first failure.

  std::shared_ptr<Store> store_;
  const std::string key_prefix_;
  std::shared_ptr<::gloo::transport::Device> device_;
  std::shared_ptr<::gloo::Context> context_;
  std::unique_ptr<ProgressTracker> tracker_;
  // Caller thread only.
  std::uint64_t seq_ = 0;
  std::uint64_t p2p_seq_ = 0;
  int splits_ = 0;

  FirstFailure failure_;

  std::shared_ptr<OpWorker> worker_;      // shared with Works' inline runners (as weak_ptr)
  std::unique_ptr<OpWorker> p2p_waiter_;  // started by the first send/recv
};

}  // namespace tessera::comm::gloo
