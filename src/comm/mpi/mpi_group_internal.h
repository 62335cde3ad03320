#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "async_work.h"
#include "call_signature.h"
#include "first_failure.h"
#include "op_worker.h"
#include "tessera/comm/process_group.h"

namespace tessera::comm::mpi {

// ProcessGroup over one MPI communicator (see make_mpi_group() for the contract). Collectives
// run on `worker_` in issue order (or inline on a waiting caller) as non-blocking MPI calls
// polled until their deadline; send/recv are posted on the caller's thread and polled on
// `p2p_waiter_`.
class MpiGroup final : public ProcessGroup {
 public:
  // Takes ownership of `comm` (freed by shutdown()).
  MpiGroup(MPI_Comm comm, GroupOptions options);
  ~MpiGroup() override;

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

  // What the body of a running collective needs: its name and deadline for the waits.
  struct Op {
    std::string name;  // "allreduce #3 on group world"
    Clock::time_point start;
    Clock::time_point deadline;
  };
  using Body = std::function<void(const Op& op)>;

  std::shared_ptr<Work> enqueue(const CallSignature& call, Body body);
  void run(std::uint64_t seq, const CallSignature& call, const Body& body, AsyncWork& work);
  // Polls `request` (started by `call`) until it completes or `op` passes its deadline; then
  // throws TimeoutError, leaving the request to MPI.
  void wait_request(MPI_Request& request, const char* call, const Op& op);
  void wait_requests(MPI_Request* requests, int count, const char* call, const Op& op);
  void ring_allreduce(std::byte* data, std::size_t count, DataType dtype, ReduceOp op, const Op& o);
  // Runs `start` (which posts one non-blocking MPI call) and waits for it.
  void run_request(const char* call, const Op& op,
                   const std::function<int(MPI_Request* request)>& start);
  void check_consistency(std::uint64_t seq, const CallSignature& call, const Op& op);
  std::shared_ptr<Work> post_p2p(bool sending, void* data, std::size_t count, DataType dtype,
                                 int peer, std::uint32_t tag);
  // Throws ValueError when `count` exceeds what one MPI call takes.
  void check_int_count(const char* op, std::size_t count) const;

  MPI_Comm comm_;
  MPI_Comm ring_comm_ = MPI_COMM_NULL;
  std::vector<std::byte> scratch_;  // the ring's receive block; worker thread only
  // Caller thread only.
  std::uint64_t seq_ = 0;
  std::uint64_t p2p_seq_ = 0;
  int splits_ = 0;

  FirstFailure failure_;
  std::atomic<bool> abandoned_{
      false};  // a request was left pending: the communicator is never freed

  std::shared_ptr<OpWorker> worker_;      // shared with Works' inline runners (as weak_ptr)
  std::unique_ptr<OpWorker> p2p_waiter_;  // started by the first send/recv
};

// Duplicates `parent` (collectively, within `timeout`); throws TimeoutError or CommError.
[[nodiscard]] MPI_Comm duplicate_comm(MPI_Comm parent, const std::string& name,
                                      std::chrono::milliseconds timeout);

}  // namespace tessera::comm::mpi
