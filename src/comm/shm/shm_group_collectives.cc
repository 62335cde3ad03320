// ShmGroup's collectives: each a sequence of steps through the slots (or, for buffers in the
// pool, straight between the ranks' buffers), and the do_* entry points that queue them.
#include "shm_group_internal.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <random>
#include <thread>
#include <utility>

#include "duration.h"
#include "group_setup.h"
#include "p2p_engine.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::shm {
namespace {

// See allreduce_pooled.
constexpr std::size_t kPooledBlockBytes = std::size_t{32} << 10;

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// a[i] += b[i], also into copy[i]: one pass over the data instead of two.
template <typename T>
void sum_to_both(T* __restrict a, T* __restrict copy, const T* __restrict b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = a[i] + b[i];
    a[i] = v;
    copy[i] = v;
  }
}

// a[i] and b[i] both become a[i] + b[i]: two ranks' buffers, reduced in one pass.
template <typename T>
void sum_into_both(T* __restrict a, T* __restrict b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = a[i] + b[i];
    a[i] = v;
    b[i] = v;
  }
}

// Slices of a chunk of `n` elements among `ranks`: whole cache lines each (so no two ranks write
// one line), the last ones shorter or empty.
struct Slices {
  Slices(std::size_t n, int ranks, std::size_t esz) : n_(n) {
    const std::size_t line = std::max<std::size_t>(kCacheLine / esz, 1);
    per_ = ceil_div(ceil_div(n, static_cast<std::size_t>(ranks)), line) * line;
  }
  [[nodiscard]] std::size_t begin(int j) const {
    return std::min(static_cast<std::size_t>(j) * per_, n_);
  }
  [[nodiscard]] std::size_t size(int j) const { return std::min(begin(j) + per_, n_) - begin(j); }

 private:
  std::size_t n_;
  std::size_t per_ = 0;
};

}  // namespace

// Reduce-scatter then allgather through the slots, one chunk (a slot's worth) at a time. Each
// chunk is cut into `size` slices; after posting chunk 0 every step is
//   reduce slice `rank` of chunk k (own data + that slice of every other rank's slot) into the
//   caller's buffer and into this rank's slot; post chunk k + 1 (copy its slices j != rank into
//   a fresh slot); publish; wait for all; copy every other rank's reduced slice of chunk k out.
// One wait per chunk: a slot is refilled three chunks later, once every rank has published the
// step after it read the slot.
void ShmGroup::allreduce_chunks(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                                int root, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  const ReduceFunction fn = reduce_function(dtype, op);
  const std::size_t chunk = layout_.slot_bytes() / esz;
  const std::size_t chunks = ceil_div(count, chunk);
  auto chunk_data = [&](std::size_t k) { return data + k * chunk * esz; };
  auto chunk_slices = [&](std::size_t k) {
    return Slices(std::min(chunk, count - k * chunk), n, esz);
  };
  // Copies this rank's part of chunk k (every slice but its own) into a fresh slot.
  auto post = [&](std::size_t k) {
    const int b = take_slot(o);
    const Slices slices = chunk_slices(k);
    for (int j = 0; j < n; ++j) {
      if (j == r || slices.size(j) == 0) continue;
      const std::size_t at = slices.begin(j) * esz;
      std::memcpy(slot(r, b) + at, chunk_data(k) + at, slices.size(j) * esz);
    }
    return b;
  };
  int b = post(0);
  publish();
  wait_all(o);
  for (std::size_t k = 0; k < chunks; ++k) {
    const Slices slices = chunk_slices(k);
    std::byte* base = chunk_data(k);
    if (const std::size_t mine = slices.size(r); mine > 0) {
      const std::size_t at = slices.begin(r) * esz;
      reduce_slice(base + at, slot(r, b) + at, b, at, mine, dtype, op, fn);
    }
    const int next = k + 1 < chunks ? post(k + 1) : -1;
    publish();
    wait_all(o);
    for (int j = 0; j < n && (root < 0 || r == root); ++j) {
      if (j == r || slices.size(j) == 0) continue;
      const std::size_t at = slices.begin(j) * esz;
      std::memcpy(base + at, slot(j, b) + at, slices.size(j) * esz);
    }
    // Every rank has read slot b of the others once it publishes its next step.
    slot_free_at_[b] = step_ + 1;
    b = next;
  }
  publish();
}

// Two steps, whatever the size: after the first (every rank's buffer is ready and its offset
// known) each rank reads its slice of every buffer and writes the reduction into every buffer;
// after the second every rank is done with the others' buffers. Each slice is reduced once, so
// every rank gets the same bits.
void ShmGroup::allreduce_pooled(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                                const std::vector<std::uint64_t>& offsets, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  std::vector<std::byte*> buffers(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) {
    buffers[static_cast<std::size_t>(j)] =
        j == r ? data : base_ + layout_.pool_offset(j) + offsets[static_cast<std::size_t>(j)];
  }
  const ReduceFunction fn = reduce_function(dtype, op);
  const Slices slices(count, n, esz);
  const std::size_t end = slices.begin(r) + slices.size(r);
  // Blocks small enough that the reduced block is still in L1/L2 when it is copied out.
  const std::size_t block_count = std::max<std::size_t>(kPooledBlockBytes / esz, 1);
  for (std::size_t at = slices.begin(r); at < end; at += block_count) {
    const std::size_t len = std::min(block_count, end - at);
    std::byte* out = data + at * esz;
    if (n == 2 && op == ReduceOp::kSum && dtype == DataType::kFloat32) {
      sum_into_both(reinterpret_cast<float*>(out),
                    reinterpret_cast<float*>(buffers[static_cast<std::size_t>(1 - r)] + at * esz),
                    len);
      continue;
    }
    for (int j = 0; j < n; ++j) {
      if (j != r) fn(out, out, buffers[static_cast<std::size_t>(j)] + at * esz, len);
    }
    if (op == ReduceOp::kAvg) divide_in_place(out, len, dtype, n);
    for (int j = 0; j < n; ++j) {
      if (j != r) std::memcpy(buffers[static_cast<std::size_t>(j)] + at * esz, out, len * esz);
    }
  }
  publish();
  wait_all(o);
}

// Every rank's `in` is in its pool, at `offsets[r]`: this rank reads block r of each where it
// lies, with no staging copy, summing in the order the chunked path does (its own block, then the
// others by rank), so either path gives the same bits; the last step keeps every `in` unchanged
// until no rank reads it any more.
void ShmGroup::reduce_scatter_pooled(const std::byte* in, std::byte* out, std::size_t recv_count,
                                     DataType dtype, ReduceOp op,
                                     const std::vector<std::uint64_t>& offsets, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  const std::size_t mine = static_cast<std::size_t>(r) * recv_count * esz;
  const ReduceFunction fn = reduce_function(dtype, op);
  const std::size_t block_count = std::max<std::size_t>(kPooledBlockBytes / esz, 1);
  for (std::size_t at = 0; at < recv_count; at += block_count) {
    const std::size_t len = std::min(block_count, recv_count - at);
    std::byte* dst = out + at * esz;
    const std::byte* own = in + mine + at * esz;
    bool first = true;
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      const std::byte* theirs =
          base_ + layout_.pool_offset(j) + offsets[static_cast<std::size_t>(j)] + mine + at * esz;
      fn(dst, first ? own : dst, theirs, len);
      first = false;
    }
    if (op == ReduceOp::kAvg) divide_in_place(dst, len, dtype, n);
  }
  publish();
  wait_all(o);
}

// dst (this rank's slice in the caller's buffer) and out (the same slice of this rank's slot)
// get dst reduced with slice `at` of every other rank's slot `b`.
void ShmGroup::reduce_slice(std::byte* dst, std::byte* out, int b, std::size_t at,
                            std::size_t count, DataType dtype, ReduceOp op, ReduceFunction fn) {
  const int n = size();
  int last = n - 1;
  if (last == rank()) --last;
  for (int j = 0; j < last; ++j) {
    if (j != rank()) fn(dst, dst, slot(j, b) + at, count);
  }
  // The common case in one pass: the last sum goes to both outputs.
  if (op == ReduceOp::kSum && dtype == DataType::kFloat32) {
    return sum_to_both(reinterpret_cast<float*>(dst), reinterpret_cast<float*>(out),
                       reinterpret_cast<const float*>(slot(last, b) + at), count);
  }
  if (op == ReduceOp::kSum && dtype == DataType::kFloat64) {
    return sum_to_both(reinterpret_cast<double*>(dst), reinterpret_cast<double*>(out),
                       reinterpret_cast<const double*>(slot(last, b) + at), count);
  }
  fn(dst, dst, slot(last, b) + at, count);
  if (op == ReduceOp::kAvg) divide_in_place(dst, count, dtype, n);
  std::memcpy(out, dst, count * data_type_size(dtype));
}

void ShmGroup::broadcast_chunks(std::byte* data, std::size_t bytes, int root, Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  for (std::size_t off = 0; off < bytes; off += chunk) {
    const std::size_t len = std::min(chunk, bytes - off);
    const int b = rank() == root ? take_slot(o) : skip_slot();
    if (rank() == root) {
      std::memcpy(slot(root, b), data + off, len);
      publish();
    } else {
      publish();
      wait_for(step_, root, o);
      std::memcpy(data + off, slot(root, b), len);
    }
    publish();
    if (rank() == root) release_slot(b);
  }
}

// Chunk k carries bytes [k * slot, (k + 1) * slot) of every rank's block; blocks may differ in
// length (allgatherv), the chunk count follows the longest.
void ShmGroup::allgatherv_chunks(const std::byte* in, std::byte* out,
                                 const std::vector<std::size_t>& block_bytes, Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  const int r = rank();
  std::vector<std::size_t> offsets(block_bytes.size());
  std::size_t longest = 0;
  for (std::size_t j = 0, at = 0; j < block_bytes.size(); ++j) {
    offsets[j] = at;
    at += block_bytes[j];
    longest = std::max(longest, block_bytes[j]);
  }
  const auto ru = static_cast<std::size_t>(r);
  std::byte* own_out = out + offsets[ru];
  if (in != own_out && block_bytes[ru] > 0) std::memmove(own_out, in, block_bytes[ru]);
  for (std::size_t off = 0; off < longest; off += chunk) {
    auto part = [&](std::size_t j) {
      return block_bytes[j] > off ? std::min(chunk, block_bytes[j] - off) : std::size_t{0};
    };
    const int b = take_slot(o);
    // From our own block of `out`: `in` may be that block (in place), and it is filled above.
    if (const std::size_t len = part(ru); len > 0) std::memcpy(slot(r, b), own_out + off, len);
    publish();
    wait_all(o);
    for (int j = 0; j < size(); ++j) {
      const auto ju = static_cast<std::size_t>(j);
      if (j == r) continue;
      if (const std::size_t len = part(ju); len > 0) {
        std::memcpy(out + offsets[ju] + off, slot(j, b), len);
      }
    }
    publish();
    release_slot(b);
  }
}

// Chunk k carries elements [k * sub, (k + 1) * sub) of every block of `in`: this rank's slot
// holds one sub-block per destination rank, and each rank reduces the sub-blocks addressed to it.
void ShmGroup::reduce_scatter_chunks(const std::byte* in, std::byte* out, std::size_t recv_count,
                                     DataType dtype, ReduceOp op, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  const ReduceFunction fn = reduce_function(dtype, op);
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = recv_count * esz;
  for (std::size_t off = 0; off < recv_count; off += sub) {
    const std::size_t len = std::min(sub, recv_count - off);
    const int b = take_slot(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                  in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
    }
    publish();
    wait_all(o);
    std::byte* dst = out + off * esz;
    const std::byte* mine = in + static_cast<std::size_t>(r) * block + off * esz;
    bool first = true;
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      fn(dst, first ? mine : dst, slot(j, b) + static_cast<std::size_t>(r) * sub_bytes, len);
      first = false;
    }
    if (first) std::memcpy(dst, mine, len * esz);
    if (op == ReduceOp::kAvg) divide_in_place(dst, len, dtype, n);
    publish();
    release_slot(b);
  }
}

void ShmGroup::gather_chunks(const std::byte* in, std::byte* out, std::size_t bytes, int root,
                             Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  const int r = rank();
  if (r == root) std::memmove(out + static_cast<std::size_t>(r) * bytes, in, bytes);
  for (std::size_t off = 0; off < bytes; off += chunk) {
    const std::size_t len = std::min(chunk, bytes - off);
    if (r != root) {
      const int b = take_slot(o);
      std::memcpy(slot(r, b), in + off, len);
      publish();
      publish();
      release_slot(b);
      continue;
    }
    const int b = skip_slot();
    publish();
    wait_all(o);
    for (int j = 0; j < size(); ++j) {
      if (j != r) std::memcpy(out + static_cast<std::size_t>(j) * bytes + off, slot(j, b), len);
    }
    publish();
  }
}

void ShmGroup::scatter_chunks(const std::byte* in, std::byte* out, std::size_t count,
                              std::size_t esz, int root, Op& o) {
  const int n = size();
  const int r = rank();
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = count * esz;
  if (r == root) std::memmove(out, in + static_cast<std::size_t>(r) * block, block);
  for (std::size_t off = 0; off < count; off += sub) {
    const std::size_t len = std::min(sub, count - off);
    if (r == root) {
      const int b = take_slot(o);
      for (int j = 0; j < n; ++j) {
        if (j == r) continue;
        std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                    in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
      }
      publish();
      publish();
      release_slot(b);
      continue;
    }
    const int b = skip_slot();
    publish();
    wait_for(step_, root, o);
    std::memcpy(out + off * esz, slot(root, b) + static_cast<std::size_t>(r) * sub_bytes,
                len * esz);
    publish();
  }
}

void ShmGroup::alltoall_chunks(const std::byte* in, std::byte* out, std::size_t count,
                               std::size_t esz, Op& o) {
  const int n = size();
  const int r = rank();
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = count * esz;
  const auto ru = static_cast<std::size_t>(r);
  std::memmove(out + ru * block, in + ru * block, block);
  for (std::size_t off = 0; off < count; off += sub) {
    const std::size_t len = std::min(sub, count - off);
    const int b = take_slot(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                  in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
    }
    publish();
    wait_all(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(out + static_cast<std::size_t>(j) * block + off * esz,
                  slot(j, b) + ru * sub_bytes, len * esz);
    }
    publish();
    release_slot(b);
  }
}

std::shared_ptr<Work> ShmGroup::do_allreduce(void* data, std::size_t count, DataType dtype,
                                             ReduceOp op) {
  const CallSignature call{.kind = OpKind::kAllreduce, .dtype = dtype, .op = op, .count = count};
  return enqueue(call, [this, data, count, dtype, op](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    auto* bytes = static_cast<std::byte*>(data);
    std::vector<std::uint64_t> offsets;
    if (pooled_offsets(data, count * data_type_size(dtype), data_type_size(dtype), o, &offsets)) {
      return allreduce_pooled(bytes, count, dtype, op, offsets, o);
    }
    allreduce_chunks(bytes, count, dtype, op, -1, o);
  });
}

bool ShmGroup::pooled_offsets(const void* data, std::size_t bytes, std::size_t alignment, Op& o,
                              std::vector<std::uint64_t>* offsets) {
  if (!pool_) return false;
  // A first step in which the ranks learn where each other's buffers are.
  shared(block(rank())->buffer_offset)
      .store(pool_->offset_of(data, bytes), std::memory_order_relaxed);
  arrive(o);
  offsets->resize(static_cast<std::size_t>(size()));
  bool all_pooled = true;
  for (int r = 0; r < size(); ++r) {
    (*offsets)[static_cast<std::size_t>(r)] = pooled_offset(r, bytes, alignment, o);
    all_pooled = all_pooled && (*offsets)[static_cast<std::size_t>(r)] != kNotPooled;
  }
  return all_pooled;
}

std::uint64_t ShmGroup::pooled_offset(int r, std::size_t bytes, std::size_t alignment,
                                      const Op& o) const {
  const std::uint64_t offset = shared(block(r)->buffer_offset).load(std::memory_order_relaxed);
  const std::size_t pool = layout_.pool_bytes();
  if (offset == kNotPooled ||
      (offset <= pool && bytes <= pool - offset && offset % alignment == 0)) {
    return offset;
  }
  throw CommError(detail::concat(describe_op(o.call.kind, o.seq, name()),
                                 ": the segment is corrupt: rank ", r, "'s buffer_offset ", offset,
                                 " does not hold the operation's ", bytes, " bytes (aligned to ",
                                 alignment, ") inside its ", pool, "-byte pool"));
}

std::shared_ptr<Work> ShmGroup::do_broadcast(void* data, std::size_t count, DataType dtype,
                                             int root) {
  const CallSignature call{
      .kind = OpKind::kBroadcast, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, root](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    broadcast_chunks(static_cast<std::byte*>(data), count * data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_reduce(void* data, std::size_t count, DataType dtype,
                                          ReduceOp op, int root) {
  // An allreduce whose last step (copying the reduced slices out) only the root takes: the other
  // ranks' buffers are scratch space by contract.
  const CallSignature call{
      .kind = OpKind::kReduce, .dtype = dtype, .op = op, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, op, root](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    allreduce_chunks(static_cast<std::byte*>(data), count, dtype, op, root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_allgather(const void* in, void* out, std::size_t count,
                                             DataType dtype) {
  const CallSignature call{.kind = OpKind::kAllgather, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](Op& o) {
    const std::size_t bytes = count * data_type_size(dtype);
    if (count == 0) return size() == 1 ? void() : arrive(o);
    allgatherv_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                      std::vector<std::size_t>(static_cast<std::size_t>(size()), bytes), o);
  });
}

std::shared_ptr<Work> ShmGroup::do_allgatherv(const void* in, void* out,
                                              const std::vector<std::size_t>& counts,
                                              DataType dtype) {
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  const CallSignature call{.kind = OpKind::kAllgatherv,
                           .dtype = dtype,
                           .count = total,
                           .counts_hash = hash_counts(counts)};
  std::vector<std::size_t> block_bytes;
  block_bytes.reserve(counts.size());
  for (std::size_t c : counts) block_bytes.push_back(c * data_type_size(dtype));
  return enqueue(call, [this, in, out, total, block_bytes = std::move(block_bytes)](Op& o) {
    if (total == 0) return size() == 1 ? void() : arrive(o);
    allgatherv_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), block_bytes,
                      o);
  });
}

std::shared_ptr<Work> ShmGroup::do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                                  DataType dtype, ReduceOp op) {
  const CallSignature call{
      .kind = OpKind::kReduceScatter, .dtype = dtype, .op = op, .count = recv_count};
  return enqueue(call, [this, in, out, recv_count, dtype, op](Op& o) {
    if (recv_count == 0) return size() == 1 ? void() : arrive(o);
    if (size() == 1) {
      std::memmove(out, in, recv_count * data_type_size(dtype));
      return;
    }
    const std::size_t esz = data_type_size(dtype);
    std::vector<std::uint64_t> offsets;
    if (pooled_offsets(in, recv_count * esz * static_cast<std::size_t>(size()), esz, o, &offsets)) {
      return reduce_scatter_pooled(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                                   recv_count, dtype, op, offsets, o);
    }
    reduce_scatter_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                          recv_count, dtype, op, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_gather(const void* in, void* out, std::size_t count,
                                          DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kGather, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    gather_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                  count * data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_scatter(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kScatter, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    scatter_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), count,
                   data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_alltoall(const void* in, void* out, std::size_t count,
                                            DataType dtype) {
  const CallSignature call{.kind = OpKind::kAlltoall, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    alltoall_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), count,
                    data_type_size(dtype), o);
  });
}

std::shared_ptr<Work> ShmGroup::do_barrier() {
  const CallSignature call{.kind = OpKind::kBarrier};
  return enqueue(call, [this](Op& o) {
    if (size() > 1) arrive(o);
  });
}

}  // namespace tessera::comm::shm
