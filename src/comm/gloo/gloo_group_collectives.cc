// GlooGroup's collectives: each queued on the group's worker and run as one Gloo algorithm
// (or, for reduce-scatter, our ring over Gloo's unbound buffers) within the deadline.
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

namespace tessera::comm::gloo {
namespace {

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

}  // namespace

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

}  // namespace tessera::comm::gloo
