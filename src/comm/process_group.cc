#include "tessera/comm/process_group.h"

#include <algorithm>
#include <new>
#include <utility>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {

ProcessGroup::ProcessGroup(int rank, int size, GroupOptions options)
    : rank_(rank), size_(size), options_(std::move(options)) {
  if (size < 1) throw ValueError(detail::concat("ProcessGroup: size ", size, " must be >= 1"));
  if (rank < 0 || rank >= size) {
    throw ValueError(detail::concat("ProcessGroup: rank ", rank, " is not in [0, ", size, ")"));
  }
  if (options_.name.empty()) throw ValueError("ProcessGroup: empty group name");
  if (options_.timeout.count() <= 0) {
    throw ValueError(detail::concat("ProcessGroup ", options_.name, ": timeout ",
                                    options_.timeout.count(), " ms must be positive"));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::check_usable(const char* op) const {
  if (shut_down_) {
    throw CommError(detail::concat(op, " on group ", options_.name, ": the group is shut down"));
  }
}

void ProcessGroup::check_root(const char* op, int root) const {
  if (root < 0 || root >= size_) {
    throw ValueError(detail::concat(op, " on group ", options_.name, ": root ", root,
                                    " is not a rank of this ", size_, "-rank group"));
  }
}

void ProcessGroup::check_buffer(const char* op, const char* what, const void* ptr,
                                std::size_t count) const {
  if (ptr == nullptr && count > 0) {
    throw ValueError(detail::concat(op, " on group ", options_.name, ": ", what,
                                    " is null but holds ", count, " elements"));
  }
}

void ProcessGroup::check_span_size(const char* op, std::size_t got, std::size_t want) const {
  if (got != want) {
    throw ValueError(detail::concat(op, " on group ", options_.name, ": output holds ", got,
                                    " elements, expected ", want));
  }
}

namespace {

void check_types(const char* op, const std::string& group, DataType dtype) {
  if (!is_valid(dtype)) {
    throw ValueError(
        detail::concat(op, " on group ", group, ": invalid DataType ", static_cast<int>(dtype)));
  }
}

void check_types(const char* op, const std::string& group, DataType dtype, ReduceOp reduce_op) {
  check_types(op, group, dtype);
  if (!is_valid(reduce_op)) {
    throw ValueError(detail::concat(op, " on group ", group, ": invalid ReduceOp ",
                                    static_cast<int>(reduce_op)));
  }
}

}  // namespace

std::shared_ptr<Work> ProcessGroup::allreduce(void* data, std::size_t count, DataType dtype,
                                              ReduceOp op) {
  check_usable("allreduce");
  check_types("allreduce", name(), dtype, op);
  check_buffer("allreduce", "data", data, count);
  return do_allreduce(data, count, dtype, op);
}

std::shared_ptr<Work> ProcessGroup::broadcast(void* data, std::size_t count, DataType dtype,
                                              int root) {
  check_usable("broadcast");
  check_types("broadcast", name(), dtype);
  check_root("broadcast", root);
  check_buffer("broadcast", "data", data, count);
  return do_broadcast(data, count, dtype, root);
}

std::shared_ptr<Work> ProcessGroup::reduce(void* data, std::size_t count, DataType dtype,
                                           ReduceOp op, int root) {
  check_usable("reduce");
  check_types("reduce", name(), dtype, op);
  check_root("reduce", root);
  check_buffer("reduce", "data", data, count);
  return do_reduce(data, count, dtype, op, root);
}

std::shared_ptr<Work> ProcessGroup::allgather(const void* in, void* out, std::size_t count,
                                              DataType dtype) {
  check_usable("allgather");
  check_types("allgather", name(), dtype);
  check_buffer("allgather", "in", in, count);
  check_buffer("allgather", "out", out, count);
  return do_allgather(in, out, count, dtype);
}

std::shared_ptr<Work> ProcessGroup::allgatherv(const void* in, std::size_t in_count, void* out,
                                               const std::vector<std::size_t>& counts,
                                               DataType dtype) {
  check_usable("allgatherv");
  check_types("allgatherv", name(), dtype);
  if (counts.size() != static_cast<std::size_t>(size_)) {
    throw ValueError(detail::concat("allgatherv on group ", name(), ": counts has ", counts.size(),
                                    " entries for a ", size_, "-rank group"));
  }
  if (counts[static_cast<std::size_t>(rank_)] != in_count) {
    throw ValueError(detail::concat("allgatherv on group ", name(), ": counts[", rank_,
                                    "] = ", counts[static_cast<std::size_t>(rank_)],
                                    " but this rank sends ", in_count, " elements"));
  }
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  check_buffer("allgatherv", "in", in, in_count);
  check_buffer("allgatherv", "out", out, total);
  return do_allgatherv(in, out, counts, dtype);
}

std::shared_ptr<Work> ProcessGroup::reduce_scatter(const void* in, void* out,
                                                   std::size_t recv_count, DataType dtype,
                                                   ReduceOp op) {
  check_usable("reduce_scatter");
  check_types("reduce_scatter", name(), dtype, op);
  check_buffer("reduce_scatter", "in", in, recv_count);
  check_buffer("reduce_scatter", "out", out, recv_count);
  return do_reduce_scatter(in, out, recv_count, dtype, op);
}

std::shared_ptr<Work> ProcessGroup::gather(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) {
  check_usable("gather");
  check_types("gather", name(), dtype);
  check_root("gather", root);
  check_buffer("gather", "in", in, count);
  if (rank_ == root) check_buffer("gather", "out", out, count);
  return do_gather(in, out, count, dtype, root);
}

std::shared_ptr<Work> ProcessGroup::scatter(const void* in, void* out, std::size_t count,
                                            DataType dtype, int root) {
  check_usable("scatter");
  check_types("scatter", name(), dtype);
  check_root("scatter", root);
  if (rank_ == root) check_buffer("scatter", "in", in, count);
  check_buffer("scatter", "out", out, count);
  return do_scatter(in, out, count, dtype, root);
}

std::shared_ptr<Work> ProcessGroup::alltoall(const void* in, void* out, std::size_t count,
                                             DataType dtype) {
  check_usable("alltoall");
  check_types("alltoall", name(), dtype);
  check_buffer("alltoall", "in", in, count);
  check_buffer("alltoall", "out", out, count);
  return do_alltoall(in, out, count, dtype);
}

std::shared_ptr<Work> ProcessGroup::send(const void* data, std::size_t count, DataType dtype,
                                         int dst, std::uint32_t tag) {
  check_usable("send");
  check_types("send", name(), dtype);
  check_root("send", dst);
  if (dst == rank_) {
    throw ValueError(detail::concat("send on group ", name(), ": rank ", rank_,
                                    " sends to itself, which is not supported"));
  }
  check_buffer("send", "data", data, count);
  return do_send(data, count, dtype, dst, tag);
}

std::shared_ptr<Work> ProcessGroup::recv(void* data, std::size_t count, DataType dtype, int src,
                                         std::uint32_t tag) {
  check_usable("recv");
  check_types("recv", name(), dtype);
  check_root("recv", src);
  if (src == rank_) {
    throw ValueError(detail::concat("recv on group ", name(), ": rank ", rank_,
                                    " receives from itself, which is not supported"));
  }
  check_buffer("recv", "data", data, count);
  return do_recv(data, count, dtype, src, tag);
}

std::shared_ptr<Work> ProcessGroup::barrier() {
  check_usable("barrier");
  return do_barrier();
}

std::unique_ptr<ProcessGroup> ProcessGroup::split(int color, int key) {
  return split(color, key, std::string());
}

std::unique_ptr<ProcessGroup> ProcessGroup::split(int color, int key, std::string name) {
  check_usable("split");
  if (color < kNoColor) {
    throw ValueError(detail::concat("split on group ", options_.name, ": color ", color,
                                    " must be >= 0, or kNoColor"));
  }
  return do_split(color, key, std::move(name));
}

std::shared_ptr<std::byte[]> ProcessGroup::allocate(std::size_t bytes) {
  if (!shut_down_) {
    if (std::shared_ptr<std::byte[]> memory = do_allocate(bytes)) return memory;
  }
  constexpr std::align_val_t kAlignment{64};
  auto* p = static_cast<std::byte*>(::operator new(std::max<std::size_t>(bytes, 1), kAlignment));
  return std::shared_ptr<std::byte[]>(p, [](std::byte* q) { ::operator delete(q, kAlignment); });
}

void ProcessGroup::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  do_shutdown();
}

void ProcessGroup::shutdown_noexcept() noexcept {
  try {
    shutdown();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor has nowhere to report to
  }
}

}  // namespace tessera::comm
