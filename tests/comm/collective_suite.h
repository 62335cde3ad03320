#pragma once

// Checks of every ProcessGroup operation, written once and run on every backend: by the
// shared-memory tests (ranks as threads) and by the MPI test (ranks as processes under mpirun).
// Each check is collective: every rank of `pg` calls it, and it asserts with gtest's EXPECT/ASSERT
// on each rank's own results. Sizes are chosen to cross chunk and slice boundaries of a backend
// with small slots (odd counts, counts no rank count divides, zero-length and uneven blocks).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/comm/data_type.h"
#include "tessera/comm/process_group.h"

namespace tessera::comm::suite {

inline constexpr DataType kAllTypes[] = {DataType::kFloat32,  DataType::kFloat64,
                                         DataType::kInt32,    DataType::kInt64,
                                         DataType::kBFloat16, DataType::kFloat16};
inline constexpr ReduceOp kAllOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax,
                                       ReduceOp::kMin};

// A buffer of `count` elements of `dtype`, read and written as doubles; in ordinary memory, or
// in `memory` (from ProcessGroup::allocate) when given.
class Buffer {
 public:
  Buffer(DataType dtype, std::size_t count, std::shared_ptr<std::byte[]> memory = nullptr)
      : dtype_(dtype),
        memory_(memory ? std::move(memory)
                       : std::make_shared<std::byte[]>(
                             std::max<std::size_t>(count * data_type_size(dtype), 1))),
        count_(count) {}

  void set(std::size_t i, double v) {
    void* p = memory_.get() + i * data_type_size(dtype_);
    switch (dtype_) {
      case DataType::kFloat32: {
        const auto x = static_cast<float>(v);
        std::memcpy(p, &x, sizeof(x));
        break;
      }
      case DataType::kFloat64:
        std::memcpy(p, &v, sizeof(v));
        break;
      case DataType::kInt32: {
        const auto x = static_cast<std::int32_t>(v);
        std::memcpy(p, &x, sizeof(x));
        break;
      }
      case DataType::kInt64: {
        const auto x = static_cast<std::int64_t>(v);
        std::memcpy(p, &x, sizeof(x));
        break;
      }
      case DataType::kBFloat16: {
        const std::uint16_t x = bfloat16_from_float(static_cast<float>(v));
        std::memcpy(p, &x, sizeof(x));
        break;
      }
      case DataType::kFloat16: {
        const std::uint16_t x = float16_from_float(static_cast<float>(v));
        std::memcpy(p, &x, sizeof(x));
        break;
      }
    }
  }

  [[nodiscard]] double get(std::size_t i) const {
    const void* p = memory_.get() + i * data_type_size(dtype_);
    switch (dtype_) {
      case DataType::kFloat32: {
        float x;
        std::memcpy(&x, p, sizeof(x));
        return x;
      }
      case DataType::kFloat64: {
        double x;
        std::memcpy(&x, p, sizeof(x));
        return x;
      }
      case DataType::kInt32: {
        std::int32_t x;
        std::memcpy(&x, p, sizeof(x));
        return x;
      }
      case DataType::kInt64: {
        std::int64_t x;
        std::memcpy(&x, p, sizeof(x));
        return static_cast<double>(x);
      }
      case DataType::kBFloat16:
      case DataType::kFloat16: {
        std::uint16_t x;
        std::memcpy(&x, p, sizeof(x));
        return dtype_ == DataType::kBFloat16 ? bfloat16_to_float(x) : float16_to_float(x);
      }
    }
    return 0;
  }

  [[nodiscard]] void* data() { return count_ == 0 ? nullptr : memory_.get(); }
  [[nodiscard]] std::size_t count() const { return count_; }

 private:
  DataType dtype_;
  std::shared_ptr<std::byte[]> memory_;
  std::size_t count_;
};

// Rank r's contribution at element i: small integers (exact in every type), of both signs.
inline double contribution(int rank, std::size_t i) {
  const double magnitude = static_cast<double>((rank + 1) * static_cast<int>(i % 3 + 1));
  return i % 2 == 0 ? magnitude : -magnitude;
}

inline double expected_reduction(ReduceOp op, DataType dtype, int n, std::size_t i) {
  double sum = 0;
  double max = contribution(0, i);
  double min = max;
  for (int r = 0; r < n; ++r) {
    sum += contribution(r, i);
    max = std::max(max, contribution(r, i));
    min = std::min(min, contribution(r, i));
  }
  switch (op) {
    case ReduceOp::kSum:
      return sum;
    case ReduceOp::kMax:
      return max;
    case ReduceOp::kMin:
      return min;
    case ReduceOp::kAvg:
      if (dtype == DataType::kInt32 || dtype == DataType::kInt64) {
        return static_cast<double>(static_cast<std::int64_t>(sum) / n);  // truncates toward 0
      }
      if (dtype == DataType::kBFloat16) return bfloat16_to_float(bfloat16_from_float(sum / n));
      if (dtype == DataType::kFloat16) return float16_to_float(float16_from_float(sum / n));
      if (dtype == DataType::kFloat32) return static_cast<float>(sum) / static_cast<float>(n);
      return sum / n;
  }
  return 0;
}

inline std::string label(DataType dtype, ReduceOp op) {
  return std::string(data_type_name(dtype)) + " " + std::string(reduce_op_name(op));
}

// Where the buffers of a check live: ordinary memory, memory from ProcessGroup::allocate (the
// shared-memory backend's pools), or allocate() on every rank but rank 0.
enum class Memory { kPlain, kAllocated, kMixed };

inline std::shared_ptr<std::byte[]> memory_for(ProcessGroup& pg, Memory memory, std::size_t bytes) {
  if (memory == Memory::kPlain || (memory == Memory::kMixed && pg.rank() == 0)) return nullptr;
  return pg.allocate(bytes);
}

// Every dtype and op on `count` elements; stops at the first wrong element of each case.
inline void check_allreduce_every_op_and_dtype(ProcessGroup& pg, std::size_t count,
                                               Memory memory = Memory::kPlain) {
  const int n = pg.size();
  for (DataType dtype : kAllTypes) {
    for (ReduceOp op : kAllOps) {
      Buffer buffer(dtype, count, memory_for(pg, memory, count * data_type_size(dtype)));
      for (std::size_t i = 0; i < count; ++i) buffer.set(i, contribution(pg.rank(), i));
      pg.allreduce(buffer.data(), count, dtype, op)->wait();
      for (std::size_t i = 0; i < count; ++i) {
        const double want = expected_reduction(op, dtype, n, i);
        if (buffer.get(i) != want) {
          ADD_FAILURE() << label(dtype, op) << " count " << count << " element " << i << " on rank "
                        << pg.rank() << ": " << buffer.get(i) << " != " << want;
          break;
        }
      }
    }
  }
}

// float32 sum over `count` elements (many chunks of a small-slot backend).
inline void check_allreduce_sum_large(ProcessGroup& pg, std::size_t count,
                                      Memory memory = Memory::kPlain) {
  const int n = pg.size();
  std::shared_ptr<std::byte[]> bytes = memory_for(pg, memory, count * sizeof(float));
  std::vector<float> plain(bytes ? 0 : count);
  std::span<float> data(bytes ? reinterpret_cast<float*>(bytes.get()) : plain.data(), count);
  for (std::size_t i = 0; i < count; ++i) data[i] = static_cast<float>(i % 1000 + pg.rank());
  pg.allreduce(data, ReduceOp::kSum)->wait();
  const float ranks_sum = static_cast<float>(n * (n - 1) / 2);
  for (std::size_t i = 0; i < count; ++i) {
    ASSERT_EQ(data[i], static_cast<float>(n * static_cast<int>(i % 1000)) + ranks_sum)
        << "element " << i << " of " << count << " on rank " << pg.rank();
  }
}

inline void check_zero_length(ProcessGroup& pg) {
  const int n = pg.size();
  pg.allreduce(nullptr, 0, DataType::kFloat32, ReduceOp::kSum)->wait();
  pg.broadcast(nullptr, 0, DataType::kInt64, 0)->wait();
  pg.reduce(nullptr, 0, DataType::kFloat64, ReduceOp::kMax, 0)->wait();
  pg.allgather(nullptr, nullptr, 0, DataType::kInt32)->wait();
  pg.allgatherv(nullptr, 0, nullptr, std::vector<std::size_t>(static_cast<std::size_t>(n), 0),
                DataType::kInt32)
      ->wait();
  pg.reduce_scatter(nullptr, nullptr, 0, DataType::kBFloat16, ReduceOp::kSum)->wait();
  pg.gather(nullptr, nullptr, 0, DataType::kFloat32, 0)->wait();
  pg.scatter(nullptr, nullptr, 0, DataType::kFloat32, 0)->wait();
  pg.alltoall(nullptr, nullptr, 0, DataType::kFloat32)->wait();
  if (n > 1) {
    const int peer = pg.rank() ^ 1;
    if (peer < n) {
      auto s = pg.send(nullptr, 0, DataType::kFloat32, peer, 3);
      auto r = pg.recv(nullptr, 0, DataType::kFloat32, peer, 3);
      s->wait();
      r->wait();
    }
  }
  // The group is still in step afterwards.
  std::int64_t one = 1;
  pg.allreduce(&one, 1, DataType::kInt64, ReduceOp::kSum)->wait();
  EXPECT_EQ(one, n);
}

inline void check_broadcast(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  for (int root : {0, n - 1, n / 2}) {
    std::vector<std::int64_t> data(count, -1);
    if (pg.rank() == root) std::iota(data.begin(), data.end(), 100 * root);
    pg.broadcast(data.data(), data.size(), DataType::kInt64, root)->wait();
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(data[i], 100 * root + static_cast<std::int64_t>(i))
          << "root " << root << " element " << i << " on rank " << pg.rank();
    }
  }
  for (DataType dtype : kAllTypes) {
    Buffer buffer(dtype, 5);
    for (std::size_t i = 0; i < 5; ++i) buffer.set(i, pg.rank() == 0 ? 0.5 * (i + 1) : 0.0);
    pg.broadcast(buffer.data(), 5, dtype, 0)->wait();
    for (std::size_t i = 0; i < 5; ++i) {
      const double want = (dtype == DataType::kInt32 || dtype == DataType::kInt64)
                              ? static_cast<double>(static_cast<std::int64_t>(0.5 * (i + 1)))
                              : 0.5 * (i + 1);
      EXPECT_EQ(buffer.get(i), want) << data_type_name(dtype) << " element " << i;
    }
  }
}

inline void check_reduce(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  const int root = n / 2;
  for (DataType dtype : {DataType::kFloat64, DataType::kInt32, DataType::kBFloat16}) {
    for (ReduceOp op : kAllOps) {
      Buffer buffer(dtype, count);
      for (std::size_t i = 0; i < count; ++i) buffer.set(i, contribution(pg.rank(), i));
      pg.reduce(buffer.data(), count, dtype, op, root)->wait();
      if (pg.rank() != root) continue;
      for (std::size_t i = 0; i < count; ++i) {
        const double want = expected_reduction(op, dtype, n, i);
        if (buffer.get(i) != want) {
          ADD_FAILURE() << label(dtype, op) << " element " << i << ": " << buffer.get(i)
                        << " != " << want;
          break;
        }
      }
    }
  }
}

inline void check_allgather(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  std::vector<std::int32_t> in(count);
  for (std::size_t i = 0; i < count; ++i) in[i] = pg.rank() * 100000 + static_cast<int>(i);
  std::vector<std::int32_t> out(count * static_cast<std::size_t>(n), -7);
  pg.allgather(std::span<const std::int32_t>(in), std::span<std::int32_t>(out))->wait();
  for (int r = 0; r < n; ++r) {
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(out[static_cast<std::size_t>(r) * count + i], r * 100000 + static_cast<int>(i))
          << "block " << r << " element " << i << " on rank " << pg.rank();
    }
  }
  // In place: the input is this rank's block of the output.
  std::vector<double> inplace(3 * static_cast<std::size_t>(n), -1);
  for (std::size_t i = 0; i < 3; ++i) {
    inplace[3 * static_cast<std::size_t>(pg.rank()) + i] = pg.rank() + 0.5 * static_cast<double>(i);
  }
  pg.allgather(inplace.data() + 3 * pg.rank(), inplace.data(), 3, DataType::kFloat64)->wait();
  for (int r = 0; r < n; ++r) {
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(inplace[3 * static_cast<std::size_t>(r) + i], r + 0.5 * static_cast<double>(i));
    }
  }
}

// Rank r sends counts[r] = ((2r) % 3) * scale elements: some ranks send nothing.
inline void check_allgatherv(ProcessGroup& pg, std::size_t scale) {
  const int n = pg.size();
  std::vector<std::size_t> counts;
  for (int r = 0; r < n; ++r) counts.push_back(static_cast<std::size_t>((2 * r) % 3) * scale);
  const std::size_t total = std::accumulate(counts.begin(), counts.end(), std::size_t{0});
  const std::size_t mine = counts[static_cast<std::size_t>(pg.rank())];
  std::vector<double> in(mine);
  for (std::size_t i = 0; i < mine; ++i) in[i] = pg.rank() + 0.25 * static_cast<double>(i);
  std::vector<double> out(total, -1);
  pg.allgatherv(in.data(), mine, out.data(), counts, DataType::kFloat64)->wait();
  std::size_t at = 0;
  for (int r = 0; r < n; ++r) {
    for (std::size_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i) {
      ASSERT_EQ(out[at++], r + 0.25 * static_cast<double>(i))
          << "from rank " << r << " element " << i << " on rank " << pg.rank();
    }
  }
}

inline void check_reduce_scatter(ProcessGroup& pg, std::size_t block,
                                 Memory memory = Memory::kPlain) {
  const int n = pg.size();
  for (DataType dtype : kAllTypes) {
    for (ReduceOp op : kAllOps) {
      const std::size_t count = block * static_cast<std::size_t>(n);
      Buffer in(dtype, count, memory_for(pg, memory, count * data_type_size(dtype)));
      // Element i of the whole input behaves like element i of an allreduce.
      for (std::size_t i = 0; i < in.count(); ++i) in.set(i, contribution(pg.rank(), i));
      Buffer out(dtype, block);
      pg.reduce_scatter(in.data(), out.data(), block, dtype, op)->wait();
      for (std::size_t i = 0; i < block; ++i) {
        const std::size_t global = static_cast<std::size_t>(pg.rank()) * block + i;
        const double want = expected_reduction(op, dtype, n, global);
        if (out.get(i) != want) {
          ADD_FAILURE() << label(dtype, op) << " block " << block << " element " << i << " on rank "
                        << pg.rank() << ": " << out.get(i) << " != " << want;
          break;
        }
      }
    }
  }
}

inline void check_gather_scatter(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  for (int root : {n - 1, 0}) {
    std::vector<float> in(count);
    for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<float>(pg.rank() * 1000 + i % 977);
    std::vector<float> gathered(pg.rank() == root ? count * static_cast<std::size_t>(n) : 0);
    pg.gather(in.data(), gathered.empty() ? nullptr : gathered.data(), count, DataType::kFloat32,
              root)
        ->wait();
    if (pg.rank() == root) {
      for (int r = 0; r < n; ++r) {
        for (std::size_t i = 0; i < count; ++i) {
          ASSERT_EQ(gathered[static_cast<std::size_t>(r) * count + i],
                    static_cast<float>(r * 1000 + i % 977))
              << "root " << root << " block " << r << " element " << i;
        }
      }
    }
    std::vector<std::int32_t> blocks;
    if (pg.rank() == root) {
      for (int r = 0; r < n; ++r) {
        for (std::size_t i = 0; i < count; ++i) blocks.push_back(r * 7 + static_cast<int>(i));
      }
    }
    std::vector<std::int32_t> mine(count, -1);
    pg.scatter(blocks.empty() ? nullptr : blocks.data(), mine.data(), count, DataType::kInt32, root)
        ->wait();
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(mine[i], pg.rank() * 7 + static_cast<int>(i))
          << "root " << root << " element " << i << " on rank " << pg.rank();
    }
  }
}

inline void check_alltoall(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  // Element i of block j of rank s's input is s * 1e6 + j * 1e3 + i % 1000: it must land at
  // element i of block s of rank j's output.
  std::vector<std::int64_t> in;
  for (int j = 0; j < n; ++j) {
    for (std::size_t i = 0; i < count; ++i) {
      in.push_back(pg.rank() * 1000000LL + j * 1000LL + static_cast<std::int64_t>(i % 1000));
    }
  }
  std::vector<std::int64_t> out(in.size(), -1);
  pg.alltoall(in.data(), out.data(), count, DataType::kInt64)->wait();
  for (int s = 0; s < n; ++s) {
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(out[static_cast<std::size_t>(s) * count + i],
                s * 1000000LL + pg.rank() * 1000LL + static_cast<std::int64_t>(i % 1000))
          << "block " << s << " element " << i << " on rank " << pg.rank();
    }
  }
}

// Two messages to the right neighbour, received in the other order: tags, not order, pair them.
// `count` elements each (past a ring's size when large).
inline void check_send_recv(ProcessGroup& pg, std::size_t count) {
  const int n = pg.size();
  if (n == 1) return;
  const int right = (pg.rank() + 1) % n;
  const int left = (pg.rank() + n - 1) % n;
  std::vector<float> first(count);
  std::vector<float> second(count + 3);
  for (std::size_t i = 0; i < first.size(); ++i) first[i] = static_cast<float>(pg.rank() + i % 91);
  for (std::size_t i = 0; i < second.size(); ++i)
    second[i] = -static_cast<float>(pg.rank() + i % 7);
  auto s1 = pg.send(std::span<const float>(first), right, 7);
  auto s2 = pg.send(std::span<const float>(second), right, 9);
  std::vector<float> got_second(second.size());
  std::vector<float> got_first(first.size());
  auto r2 = pg.recv(std::span<float>(got_second), left, 9);
  auto r1 = pg.recv(std::span<float>(got_first), left, 7);
  for (const auto& w : {s1, s2, r2, r1}) w->wait();
  for (std::size_t i = 0; i < got_first.size(); ++i) {
    ASSERT_EQ(got_first[i], static_cast<float>(left + i % 91)) << "element " << i;
  }
  for (std::size_t i = 0; i < got_second.size(); ++i) {
    ASSERT_EQ(got_second[i], -static_cast<float>(left + i % 7)) << "element " << i;
  }
  // Several messages with one tag arrive in the order sent.
  std::vector<std::int32_t> a = {pg.rank(), 1};
  std::vector<std::int32_t> b = {pg.rank(), 2};
  std::vector<std::int32_t> got_a(2);
  std::vector<std::int32_t> got_b(2);
  auto sa = pg.send(std::span<const std::int32_t>(a), right, 11);
  auto sb = pg.send(std::span<const std::int32_t>(b), right, 11);
  // Both recvs posted before any wait: handles complete in issue order (ProcessGroup's
  // contract), so waiting for the first recv before posting the second could wait for `sb`, which
  // needs that second recv.
  auto ra = pg.recv(std::span<std::int32_t>(got_a), left, 11);
  auto rb = pg.recv(std::span<std::int32_t>(got_b), left, 11);
  for (const auto& w : {sa, sb, ra, rb}) w->wait();
  EXPECT_EQ(got_a, (std::vector<std::int32_t>{left, 1}));
  EXPECT_EQ(got_b, (std::vector<std::int32_t>{left, 2}));
}

inline void check_overlap_in_order(ProcessGroup& pg) {
  const int n = pg.size();
  std::vector<double> a(1000, 1.0);
  std::vector<std::int32_t> b(33, pg.rank());
  auto first = pg.allreduce(std::span<double>(a), ReduceOp::kSum);
  auto second = pg.allreduce(std::span<std::int32_t>(b), ReduceOp::kMax);
  second->wait();
  EXPECT_TRUE(first->is_completed()) << "operations complete in issue order";
  first->wait();
  EXPECT_EQ(a[999], static_cast<double>(n));
  EXPECT_EQ(b[0], n - 1);
}

inline void check_split(ProcessGroup& pg) {
  const int n = pg.size();
  // Even and odd ranks; key = -rank reverses the order inside each sub-group.
  auto sub = pg.split(pg.rank() % 2, -pg.rank(), pg.rank() % 2 == 0 ? "even" : "odd");
  ASSERT_NE(sub, nullptr);
  std::vector<int> members;
  for (int r = pg.rank() % 2; r < n; r += 2) members.push_back(r);
  EXPECT_EQ(sub->size(), static_cast<int>(members.size()));
  EXPECT_EQ(sub->rank(), static_cast<int>(members.size()) - 1 - pg.rank() / 2);
  EXPECT_EQ(sub->name(), pg.rank() % 2 == 0 ? "even" : "odd");
  std::int64_t value = pg.rank();
  // The parent keeps working while its sub-groups run.
  std::int64_t total = 1;
  auto on_parent = pg.allreduce(&total, 1, DataType::kInt64, ReduceOp::kSum);
  sub->allreduce(&value, 1, DataType::kInt64, ReduceOp::kSum)->wait();
  on_parent->wait();
  EXPECT_EQ(value, std::accumulate(members.begin(), members.end(), 0));
  EXPECT_EQ(total, n);
  auto left_out = pg.split(pg.rank() == 0 ? kNoColor : 5, pg.rank());
  if (pg.rank() == 0) {
    EXPECT_EQ(left_out, nullptr);
  } else {
    ASSERT_NE(left_out, nullptr);
    EXPECT_EQ(left_out->size(), n - 1);
    EXPECT_EQ(left_out->rank(), pg.rank() - 1);
    float x = 1;
    left_out->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    EXPECT_EQ(x, static_cast<float>(n - 1));
    left_out->shutdown();
  }
  sub->barrier()->wait();
  sub->shutdown();
}

// Half-way values between two neighbours of the 16-bit formats (2 ranks): the sum must round to
// the even one, as one float addition rounded once would.
inline void check_sixteen_bit_sums(ProcessGroup& pg) {
  // bfloat16 spacing is 2 in [256, 512): 256 + 1 ties to 256, 258 + 1 ties to 260.
  std::vector<std::uint16_t> bf = {bfloat16_from_float(pg.rank() == 0 ? 256.0f : 1.0f),
                                   bfloat16_from_float(pg.rank() == 0 ? 258.0f : 1.0f),
                                   bfloat16_from_float(pg.rank() == 0 ? 1.5f : 0.25f)};
  pg.allreduce(bf.data(), bf.size(), DataType::kBFloat16, ReduceOp::kSum)->wait();
  EXPECT_EQ(bfloat16_to_float(bf[0]), 256.0f);
  EXPECT_EQ(bfloat16_to_float(bf[1]), 260.0f);
  EXPECT_EQ(bfloat16_to_float(bf[2]), 1.75f);
  // float16 spacing is 2 in [2048, 4096).
  std::vector<std::uint16_t> fp = {float16_from_float(pg.rank() == 0 ? 2048.0f : 1.0f),
                                   float16_from_float(pg.rank() == 0 ? 2050.0f : 1.0f),
                                   float16_from_float(pg.rank() == 0 ? 0.1f : 0.2f)};
  pg.allreduce(fp.data(), fp.size(), DataType::kFloat16, ReduceOp::kSum)->wait();
  EXPECT_EQ(float16_to_float(fp[0]), 2048.0f);
  EXPECT_EQ(float16_to_float(fp[1]), 2052.0f);
  EXPECT_EQ(float16_to_float(fp[2]),
            float16_to_float(float16_from_float(float16_to_float(float16_from_float(0.1f)) +
                                                float16_to_float(float16_from_float(0.2f)))));
}

// Every check above at the sizes that matter for a backend whose slots hold `slot_elements`
// float32 elements: below, at and past one slot, and odd counts.
inline void check_everything(ProcessGroup& pg, std::size_t slot_elements) {
  for (std::size_t count : {std::size_t{1}, std::size_t{7}, slot_elements + 13}) {
    check_allreduce_every_op_and_dtype(pg, count);
    check_allreduce_every_op_and_dtype(pg, count, Memory::kAllocated);
    check_allreduce_every_op_and_dtype(pg, count, Memory::kMixed);
  }
  check_allreduce_sum_large(pg, 9 * slot_elements + 1001);
  check_allreduce_sum_large(pg, 9 * slot_elements + 1001, Memory::kAllocated);
  check_zero_length(pg);
  check_broadcast(pg, 3 * slot_elements + 5);
  check_reduce(pg, slot_elements + 3);
  check_allgather(pg, 2 * slot_elements + 3);
  check_allgatherv(pg, 1);
  check_allgatherv(pg, slot_elements + 1);
  check_reduce_scatter(pg, 5);
  check_reduce_scatter(pg, slot_elements + 1);
  check_reduce_scatter(pg, 5, Memory::kAllocated);
  check_reduce_scatter(pg, 5, Memory::kMixed);
  check_reduce_scatter(pg, 9001, Memory::kAllocated);  // float64: three of the pooled path's steps
  check_gather_scatter(pg, 3);
  check_gather_scatter(pg, 2 * slot_elements + 1);
  check_alltoall(pg, 2);
  check_alltoall(pg, slot_elements + 7);
  check_send_recv(pg, 5);
  check_overlap_in_order(pg);
  check_split(pg);
  pg.barrier()->wait();
}

}  // namespace tessera::comm::suite
