#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "async_work.h"
#include "buffer_pool.h"
#include "call_signature.h"
#include "first_failure.h"
#include "op_worker.h"
#include "reduce_kernels.h"
#include "segment.h"
#include "tessera/comm/process_group.h"
#include "tessera/comm/shm/shm_group.h"
#include "tessera/comm/store.h"

namespace tessera::comm::shm {

class P2pEngine;

// ProcessGroup through one shared-memory segment (see make_shm_group() for the contract).
//
// Collectives are sequences of steps. After each step a rank publishes its step count
// (`progress` in its RankBlock) and waits until the ranks it reads from have published the same
// count; every rank takes the same steps for the same collective, so the counts agree. Data moves
// through kSlotsPerRank slots per rank, used in turn by successive chunks: a rank writes a slot
// only once every rank has passed the step after which nobody reads it (`slot_free_at_`).
//
// Collectives run on `worker_` in issue order (or inline on a waiting caller); send/recv on the
// P2pEngine's thread.
class ShmGroup final : public ProcessGroup {
 public:
  struct Setup {
    std::shared_ptr<Store> store;
    // Store keys of this group start with it: "comm/world", "comm/world/split1/0".
    std::string key_prefix;
    int rank = 0;
    int size = 1;
    GroupOptions options;
    ShmOptions shm;
  };

  // Creates or maps the segment and waits for every rank to map it; see make_shm_group().
  explicit ShmGroup(Setup setup);
  ~ShmGroup() override;

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
  std::shared_ptr<std::byte[]> do_allocate(std::size_t bytes) override;

 private:
  using Clock = std::chrono::steady_clock;

  // The collective being run: what its waits need to bound it and to name it.
  struct Op {
    std::uint64_t seq = 0;
    CallSignature call;
    Clock::time_point start;
    Clock::time_point deadline;
    std::uint64_t entry_step = 0;  // step count when it started
    bool met = false;              // a wait of this collective has compared signatures already
  };
  using Body = std::function<void(Op& op)>;

  void join(Clock::time_point deadline);
  // Throws CommError when the segment rank 0 made is not the one this rank expects.
  void check_header(const std::string& where, const std::string& segment_name) const;
  std::shared_ptr<Work> enqueue(const CallSignature& call, Body body);
  void run(std::uint64_t seq, const CallSignature& call, const Body& body, AsyncWork& work);
  // The collective failed here: the group becomes unusable, the others learn why.
  void fail(RankState state, const std::string& message, std::exception_ptr error, AsyncWork& work);
  // Leaves this rank's failure in the segment, for the ranks that wait on it.
  void publish_failure(RankState state, const std::string& reason) noexcept;

  // Finishes a step: publishes step_ + 1 and wakes sleepers.
  void publish();
  // Waits until every other rank (`only` < 0) or rank `only` has published `target` steps,
  // within op.deadline. Throws TimeoutError / CommError / CollectiveMismatchError naming ranks.
  void wait_for(std::uint64_t target, int only, Op& op);
  void wait_all(Op& op) { wait_for(step_, -1, op); }
  // The slot for the next chunk, once no rank reads it any more; this rank writes it.
  int take_slot(Op& op);
  // The slot index of the next chunk, where this rank writes nothing (it reads others' slots).
  int skip_slot() {
    const int b = next_slot_;
    next_slot_ = (next_slot_ + 1) % kSlotsPerRank;
    return b;
  }
  // The other ranks have finished reading this rank's slot `b` once they pass the current step.
  void release_slot(int b) { slot_free_at_[b] = step_; }
  [[nodiscard]] std::byte* slot(int r, int b) const { return layout_.slot(base_, r, b); }
  [[nodiscard]] RankBlock* block(int r) const { return layout_.rank(base_, r); }
  // Checks rank r's record of collective op.seq against ours once it reached the collective.
  void check_signature(int r, const Op& op) const;
  // Rank r's signature of collective `seq`, if its record still holds it.
  bool read_record(int r, std::uint64_t seq, CallSignature* call) const;
  // The latest collective rank r entered (0: none).
  [[nodiscard]] std::uint64_t latest_record(int r) const;
  [[noreturn]] void throw_stuck(const std::vector<int>& pending, std::uint64_t target, const Op& op,
                                Clock::time_point wait_start) const;
  // Throws when a rank in `pending` that has not reached `target` failed, left the group or
  // exited.
  void check_peers(const std::vector<int>& pending, std::uint64_t target, const Op& op,
                   bool check_pids) const;
  [[nodiscard]] std::string describe_rank(int r) const;
  // Rank r's failure message, read no further than its field.
  [[nodiscard]] std::string reason_of(int r) const;
  // Where rank r's buffer of an allreduce of `bytes` lies in its pool (kNotPooled: elsewhere);
  // throws CommError naming the rank and the field when the offset leaves the pool.
  [[nodiscard]] std::uint64_t pooled_offset(int r, std::size_t bytes, std::size_t alignment,
                                            const Op& o) const;
  // A step in which every rank says where its buffer `data` of `bytes` lies in its pool; true,
  // with each rank's offset, when every rank's does (the collective may then read them in place).
  bool pooled_offsets(const void* data, std::size_t bytes, std::size_t alignment, Op& o,
                      std::vector<std::uint64_t>* offsets);

  // Collective bodies (run on the worker).
  // `root` >= 0: a reduce, whose result only the root copies out.
  void allreduce_chunks(std::byte* data, std::size_t count, DataType dtype, ReduceOp op, int root,
                        Op& o);
  // Every rank's buffer is in its pool, at `offsets[r]`: reduces this rank's slice from all of
  // them and writes it into all of them.
  void allreduce_pooled(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                        const std::vector<std::uint64_t>& offsets, Op& o);
  void reduce_slice(std::byte* dst, std::byte* out, int b, std::size_t at, std::size_t count,
                    DataType dtype, ReduceOp op, ReduceFunction fn);
  void broadcast_chunks(std::byte* data, std::size_t bytes, int root, Op& o);
  void allgatherv_chunks(const std::byte* in, std::byte* out,
                         const std::vector<std::size_t>& block_bytes, Op& o);
  void reduce_scatter_chunks(const std::byte* in, std::byte* out, std::size_t recv_count,
                             DataType dtype, ReduceOp op, Op& o);
  // Every rank's `in` is in its pool, at `offsets[r]`: reads this rank's block of each in place.
  void reduce_scatter_pooled(const std::byte* in, std::byte* out, std::size_t recv_count,
                             DataType dtype, ReduceOp op, const std::vector<std::uint64_t>& offsets,
                             Op& o);
  void gather_chunks(const std::byte* in, std::byte* out, std::size_t bytes, int root, Op& o);
  void scatter_chunks(const std::byte* in, std::byte* out, std::size_t count, std::size_t esz,
                      int root, Op& o);
  void alltoall_chunks(const std::byte* in, std::byte* out, std::size_t count, std::size_t esz,
                       Op& o);
  void start_p2p();
  // A send/recv Work that failed already: the group is unusable.
  [[nodiscard]] std::shared_ptr<Work> failed_p2p(const char* kind, int peer, std::uint32_t tag,
                                                 const std::string& reason) const;
  // One step that every rank takes: checks signatures; the body of zero-length collectives.
  void arrive(Op& o);

  std::shared_ptr<Store> store_;
  const std::string key_prefix_;
  const ShmOptions shm_options_;
  const Layout layout_;
  std::shared_ptr<Segment> segment_;  // shared with the buffers allocated from pool_
  std::byte* base_ = nullptr;
  std::unique_ptr<BufferPool> pool_;  // null when shm_options_.pool_bytes is 0

  // Worker thread only (collectives run one at a time).
  std::uint64_t step_ = 0;
  std::uint64_t slot_free_at_[kSlotsPerRank] = {};
  std::uint64_t all_reached_ = 0;  // every rank is known to have published this many steps
  int next_slot_ = 0;

  // Caller thread only.
  std::uint64_t seq_ = 0;
  int splits_ = 0;

  FirstFailure failure_;

  std::shared_ptr<OpWorker> worker_;  // shared with Works' inline runners (as weak_ptr)
  std::unique_ptr<P2pEngine> p2p_;    // started by the first send/recv
};

}  // namespace tessera::comm::shm
