#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/comm/data_type.h"
#include "tessera/comm/timeouts.h"
#include "tessera/comm/work.h"

namespace tessera::comm {

// split() color of a rank that joins no sub-group (it gets nullptr).
inline constexpr int kNoColor = -1;

struct GroupOptions {
  // Names the group in errors ("allreduce #12 on group dp: ...") and in store keys: two groups
  // on one store need different names.
  std::string name = "world";
  // Deadline of each operation, counted from when it starts running (after the operations
  // issued before it), and of the group's rendezvous. On expiry the operation fails with a
  // TimeoutError naming the operation, the group, the ranks that did not arrive and the wait.
  std::chrono::milliseconds timeout = kDefaultTimeout;
  // Before each collective the ranks exchange its signature (kind, dtype, count, root, op) in a
  // small allgather and fail with CollectiveMismatchError naming the first diverging rank instead
  // of running it. Off by default: the exchange is one small-message round trip, measured at
  // about 90 us on loopback TCP, some 20% of a 1 MiB allreduce between 2 ranks (1-2% at 16 MiB),
  // far over the 2% a default may cost. Turn it on while developing: without it, ranks that pass
  // Gloo different counts can abort the process (Gloo terminates on an oversized message) or
  // receive part of the data. Mismatches that make ranks wait are named in any case, when the
  // timeout expires, from the progress each rank records in the store.
  bool check_consistency = false;
};

// A set of ranks that run collectives together: `size()` processes (or threads), each holding
// its own ProcessGroup object with its `rank()`.
//
// Threading: one caller thread per group object; issuing operations on one object from several
// threads at once is not allowed. Operations are asynchronous: each call returns a Work handle at
// once. Collectives run one at a time, in issue order, on the group's own thread, so the caller
// overlaps computation with them (a thread that waits for a collective that has not started yet
// runs it itself, which saves two thread hand-offs). Every rank must issue the same collectives
// in the same order.
// send/recv are posted when issued and progress independently of collectives (their handles
// complete in issue order among themselves); pair them as with MPI's isend/irecv.
//
// Buffers are borrowed: they must stay alive and untouched until the operation's Work completes.
// Counts are elements of `dtype`; a zero count is valid everywhere and `data` may then be null.
//
// Errors: arguments that are wrong on this rank alone (root out of range, counts of the wrong
// length, a null buffer with a non-zero count) throw ValueError from the call. Failures of the
// operation itself surface from Work::wait(): TimeoutError, CollectiveMismatchError, CommError.
// After a timeout or a transport failure the group is unusable: later operations fail with a
// CommError naming the first failure. Create a new group (after a restart) to go on.
class ProcessGroup {
 public:
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;
  // Does what shutdown() does, but never throws: errors are dropped.
  virtual ~ProcessGroup();

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] const std::string& name() const { return options_.name; }
  [[nodiscard]] const GroupOptions& options() const { return options_; }

  // In place: every rank ends with the element-wise reduction of all ranks' `data`.
  [[nodiscard]] std::shared_ptr<Work> allreduce(void* data, std::size_t count, DataType dtype,
                                                ReduceOp op);
  // In place: `data` of rank `root` is copied to every rank's `data`.
  [[nodiscard]] std::shared_ptr<Work> broadcast(void* data, std::size_t count, DataType dtype,
                                                int root);
  // In place: rank `root` ends with the reduction of all ranks' `data`; the contents of `data` on
  // the other ranks are unspecified afterwards (they serve as scratch space).
  [[nodiscard]] std::shared_ptr<Work> reduce(void* data, std::size_t count, DataType dtype,
                                             ReduceOp op, int root);
  // `in` has `count` elements, `out` size() * count: out holds rank 0's block, then rank 1's...
  [[nodiscard]] std::shared_ptr<Work> allgather(const void* in, void* out, std::size_t count,
                                                DataType dtype);
  // Uneven allgather: `counts[r]` elements come from rank r (the same vector on every rank, with
  // counts[rank()] == in_count); `out` holds their concatenation in rank order.
  [[nodiscard]] std::shared_ptr<Work> allgatherv(const void* in, std::size_t in_count, void* out,
                                                 const std::vector<std::size_t>& counts,
                                                 DataType dtype);
  // `in` has size() * recv_count elements; rank r's `out` (recv_count elements) gets the
  // reduction over all ranks of block r of `in`. `in` and `out` must not overlap.
  [[nodiscard]] std::shared_ptr<Work> reduce_scatter(const void* in, void* out,
                                                     std::size_t recv_count, DataType dtype,
                                                     ReduceOp op);
  // Every rank sends `count` elements of `in`; on `root`, `out` (size() * count elements) gets
  // them in rank order. `out` is ignored (may be null) on other ranks.
  [[nodiscard]] std::shared_ptr<Work> gather(const void* in, void* out, std::size_t count,
                                             DataType dtype, int root);
  // On `root`, `in` holds size() * count elements; block r goes to rank r's `out` (count
  // elements). `in` is ignored (may be null) on other ranks.
  [[nodiscard]] std::shared_ptr<Work> scatter(const void* in, void* out, std::size_t count,
                                              DataType dtype, int root);
  // `in` and `out` hold size() * count elements; block j of rank i's `in` lands in block i of rank
  // j's `out`.
  [[nodiscard]] std::shared_ptr<Work> alltoall(const void* in, void* out, std::size_t count,
                                               DataType dtype);
  // Point to point. A send matches the recv on `dst` with the same tag and count; messages with
  // one (peer, tag) arrive in the order sent. Sending to oneself is not supported.
  [[nodiscard]] std::shared_ptr<Work> send(const void* data, std::size_t count, DataType dtype,
                                           int dst, std::uint32_t tag);
  [[nodiscard]] std::shared_ptr<Work> recv(void* data, std::size_t count, DataType dtype, int src,
                                           std::uint32_t tag);
  // Completes on every rank once all ranks have called it.
  [[nodiscard]] std::shared_ptr<Work> barrier();

  // Collective over this group, like MPI_Comm_split: ranks with the same `color` (>= 0) form a
  // new group, ordered by `key`, then by rank here. kNoColor gives nullptr. Blocks until the new
  // group is connected (within options().timeout). The sub-group has its own thread, sequence
  // numbers and store keys; it inherits the timeout and consistency setting. `name` names it in
  // errors; the default is "<parent>/split<N>:<color>".
  [[nodiscard]] std::unique_ptr<ProcessGroup> split(int color, int key);
  [[nodiscard]] std::unique_ptr<ProcessGroup> split(int color, int key, std::string name);

  // Memory for the buffers of this group's collectives: at least `bytes`, 64-byte aligned, not
  // initialised; not collective. The shared-memory backend hands out memory every rank of the
  // group has mapped, and an allreduce whose buffers all come from there reads the other ranks'
  // buffers and writes its result into them directly, without copying through its staging
  // slots (faster for large buffers: src/comm/README.md has the measurements); a reduce_scatter
  // whose `in` buffers all come from there reads them in place likewise. Other backends,
  // and the shared-memory backend once its pool (ShmOptions::pool_bytes) is used up, return
  // ordinary memory; every collective accepts any memory either way. The memory stays valid
  // while referenced, also after shutdown().
  [[nodiscard]] std::shared_ptr<std::byte[]> allocate(std::size_t bytes);

  // Waits for the operations issued so far (each within its timeout), then stops the group's
  // threads and closes its connections. Idempotent. Operations issued afterwards throw
  // CommError. Throws the first error met while closing.
  void shutdown();

  // Typed conveniences over the calls above, for float, double, int32_t and int64_t spans.
  template <typename T>
  [[nodiscard]] std::shared_ptr<Work> allreduce(std::span<T> data, ReduceOp op) {
    return allreduce(data.data(), data.size(), DataTypeOf<T>::kValue, op);
  }
  template <typename T>
  [[nodiscard]] std::shared_ptr<Work> broadcast(std::span<T> data, int root) {
    return broadcast(data.data(), data.size(), DataTypeOf<T>::kValue, root);
  }
  // `out` must hold size() * in.size() elements.
  template <typename T>
  [[nodiscard]] std::shared_ptr<Work> allgather(std::span<const T> in, std::span<T> out) {
    check_span_size("allgather", out.size(), in.size() * static_cast<std::size_t>(size_));
    return allgather(in.data(), out.data(), in.size(), DataTypeOf<T>::kValue);
  }
  template <typename T>
  [[nodiscard]] std::shared_ptr<Work> send(std::span<const T> data, int dst, std::uint32_t tag) {
    return send(data.data(), data.size(), DataTypeOf<T>::kValue, dst, tag);
  }
  template <typename T>
  [[nodiscard]] std::shared_ptr<Work> recv(std::span<T> data, int src, std::uint32_t tag) {
    return recv(data.data(), data.size(), DataTypeOf<T>::kValue, src, tag);
  }

 protected:
  // Throws ValueError unless 0 <= rank < size and size >= 1.
  ProcessGroup(int rank, int size, GroupOptions options);

  // Backends implement these. The public calls have checked the arguments described above (and
  // that the group is not shut down) before calling them; they run on the caller's thread and
  // must not block on other ranks except where noted.
  virtual std::shared_ptr<Work> do_allreduce(void* data, std::size_t count, DataType dtype,
                                             ReduceOp op) = 0;
  virtual std::shared_ptr<Work> do_broadcast(void* data, std::size_t count, DataType dtype,
                                             int root) = 0;
  virtual std::shared_ptr<Work> do_reduce(void* data, std::size_t count, DataType dtype,
                                          ReduceOp op, int root) = 0;
  virtual std::shared_ptr<Work> do_allgather(const void* in, void* out, std::size_t count,
                                             DataType dtype) = 0;
  virtual std::shared_ptr<Work> do_allgatherv(const void* in, void* out,
                                              const std::vector<std::size_t>& counts,
                                              DataType dtype) = 0;
  virtual std::shared_ptr<Work> do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                                  DataType dtype, ReduceOp op) = 0;
  virtual std::shared_ptr<Work> do_gather(const void* in, void* out, std::size_t count,
                                          DataType dtype, int root) = 0;
  virtual std::shared_ptr<Work> do_scatter(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) = 0;
  virtual std::shared_ptr<Work> do_alltoall(const void* in, void* out, std::size_t count,
                                            DataType dtype) = 0;
  virtual std::shared_ptr<Work> do_send(const void* data, std::size_t count, DataType dtype,
                                        int dst, std::uint32_t tag) = 0;
  virtual std::shared_ptr<Work> do_recv(void* data, std::size_t count, DataType dtype, int src,
                                        std::uint32_t tag) = 0;
  virtual std::shared_ptr<Work> do_barrier() = 0;
  // Backend memory for allocate(); nullptr: ordinary memory.
  virtual std::shared_ptr<std::byte[]> do_allocate(std::size_t /*bytes*/) { return nullptr; }
  // May block on the other ranks (it is a collective). An empty `name` asks for the default.
  virtual std::unique_ptr<ProcessGroup> do_split(int color, int key, std::string name) = 0;
  // Called once, by shutdown() or by the destructor of the most derived class (a backend's
  // destructor must call shutdown_noexcept(): the base destructor runs after its members are
  // gone).
  virtual void do_shutdown() = 0;

  // For backend destructors: shutdown() without throwing.
  void shutdown_noexcept() noexcept;

 private:
  void check_usable(const char* op) const;
  void check_root(const char* op, int root) const;
  void check_buffer(const char* op, const char* what, const void* ptr, std::size_t count) const;
  void check_span_size(const char* op, std::size_t got, std::size_t want) const;

  int rank_;
  int size_;
  GroupOptions options_;
  bool shut_down_ = false;
};

}  // namespace tessera::comm
