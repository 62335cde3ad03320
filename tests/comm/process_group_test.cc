#include "tessera/comm/process_group.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "run_ranks.h"
#include "tessera/comm/data_type.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using testing::run_ranks;

constexpr DataType kAllTypes[] = {DataType::kFloat32, DataType::kFloat64,  DataType::kInt32,
                                  DataType::kInt64,   DataType::kBFloat16, DataType::kFloat16};
constexpr ReduceOp kAllOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

// A buffer of `count` elements of `dtype`, read and written as doubles.
class Buffer {
 public:
  Buffer(DataType dtype, std::size_t count)
      : dtype_(dtype), bytes_(count * data_type_size(dtype)), count_(count) {}

  void set(std::size_t i, double v) {
    void* p = bytes_.data() + i * data_type_size(dtype_);
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
    const void* p = bytes_.data() + i * data_type_size(dtype_);
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

  [[nodiscard]] void* data() { return bytes_.empty() ? nullptr : bytes_.data(); }
  [[nodiscard]] std::size_t count() const { return count_; }

 private:
  DataType dtype_;
  std::vector<std::byte> bytes_;
  std::size_t count_;
};

// Rank r's contribution at element i: small integers (exact in every type), of both signs.
double contribution(int rank, std::size_t i) {
  const double magnitude = static_cast<double>((rank + 1) * static_cast<int>(i % 3 + 1));
  return i % 2 == 0 ? magnitude : -magnitude;
}

double expected_reduction(ReduceOp op, DataType dtype, int n, std::size_t i) {
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

std::string label(DataType dtype, ReduceOp op) {
  return std::string(data_type_name(dtype)) + " " + std::string(reduce_op_name(op));
}

class ProcessGroupSizes : public ::testing::TestWithParam<int> {};

TEST_P(ProcessGroupSizes, AllreduceComputesEveryOpOnEveryDtype) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    for (DataType dtype : kAllTypes) {
      for (ReduceOp op : kAllOps) {
        Buffer buffer(dtype, 7);
        for (std::size_t i = 0; i < buffer.count(); ++i) buffer.set(i, contribution(pg.rank(), i));
        pg.allreduce(buffer.data(), buffer.count(), dtype, op)->wait();
        for (std::size_t i = 0; i < buffer.count(); ++i) {
          EXPECT_EQ(buffer.get(i), expected_reduction(op, dtype, n, i))
              << label(dtype, op) << " element " << i << " on rank " << pg.rank();
        }
      }
    }
  });
}

TEST_P(ProcessGroupSizes, AllreduceSumsBuffersLargerThanGloosSegment) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    // 1.2 MB: several segments of Gloo's ring, and a length no rank count divides.
    std::vector<float> data(300007);
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = static_cast<float>(i % 1000 + pg.rank());
    pg.allreduce(std::span<float>(data), ReduceOp::kSum)->wait();
    const float ranks_sum = static_cast<float>(n * (n - 1) / 2);
    for (std::size_t i = 0; i < data.size(); ++i) {
      ASSERT_EQ(data[i], static_cast<float>(n * static_cast<int>(i % 1000)) + ranks_sum) << i;
    }
  });
}

TEST_P(ProcessGroupSizes, ZeroLengthCollectivesComplete) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
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
    // The group is still in step afterwards.
    std::int64_t one = 1;
    pg.allreduce(&one, 1, DataType::kInt64, ReduceOp::kSum)->wait();
    EXPECT_EQ(one, n);
  });
}

TEST_P(ProcessGroupSizes, BroadcastCopiesTheRootsBufferEverywhere) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    for (int root : {0, n - 1}) {
      std::vector<std::int64_t> data(5, -1);
      if (pg.rank() == root) std::iota(data.begin(), data.end(), 100 * root);
      pg.broadcast(data.data(), data.size(), DataType::kInt64, root)->wait();
      for (std::size_t i = 0; i < data.size(); ++i) {
        EXPECT_EQ(data[i], 100 * root + static_cast<std::int64_t>(i)) << "root " << root;
      }
    }
    Buffer half(DataType::kBFloat16, 3);
    for (std::size_t i = 0; i < 3; ++i) half.set(i, pg.rank() == 0 ? 0.5 * (i + 1) : 0.0);
    pg.broadcast(half.data(), 3, DataType::kBFloat16, 0)->wait();
    EXPECT_EQ(half.get(2), 1.5);
  });
}

TEST_P(ProcessGroupSizes, ReduceLeavesTheResultOnTheRoot) {
  const int n = GetParam();
  const int root = n / 2;
  run_ranks(n, [&](ProcessGroup& pg) {
    for (ReduceOp op : kAllOps) {
      Buffer buffer(DataType::kFloat64, 5);
      for (std::size_t i = 0; i < 5; ++i) buffer.set(i, contribution(pg.rank(), i));
      pg.reduce(buffer.data(), 5, DataType::kFloat64, op, root)->wait();
      if (pg.rank() != root) continue;
      for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(buffer.get(i), expected_reduction(op, DataType::kFloat64, n, i))
            << reduce_op_name(op) << " element " << i;
      }
    }
  });
}

TEST_P(ProcessGroupSizes, AllgatherConcatenatesInRankOrder) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    const std::vector<std::int32_t> in = {pg.rank(), 10 * pg.rank(), -pg.rank()};
    std::vector<std::int32_t> out(3 * static_cast<std::size_t>(n), -7);
    pg.allgather(std::span<const std::int32_t>(in), std::span<std::int32_t>(out))->wait();
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(out[3 * r], r);
      EXPECT_EQ(out[3 * r + 1], 10 * r);
      EXPECT_EQ(out[3 * r + 2], -r);
    }
  });
}

TEST_P(ProcessGroupSizes, AllgathervTakesUnevenAndEmptyContributions) {
  const int n = GetParam();
  // Rank r sends (2r) % 3 elements: 0, 2, 1, 0, 2: some ranks send nothing.
  std::vector<std::size_t> counts;
  for (int r = 0; r < n; ++r) counts.push_back(static_cast<std::size_t>((2 * r) % 3));
  const std::size_t total = std::accumulate(counts.begin(), counts.end(), std::size_t{0});
  run_ranks(n, [&](ProcessGroup& pg) {
    const std::size_t mine = counts[static_cast<std::size_t>(pg.rank())];
    std::vector<double> in(mine);
    for (std::size_t i = 0; i < mine; ++i) in[i] = pg.rank() + 0.25 * static_cast<double>(i);
    std::vector<double> out(total, -1);
    pg.allgatherv(in.data(), mine, out.data(), counts, DataType::kFloat64)->wait();
    std::size_t at = 0;
    for (int r = 0; r < n; ++r) {
      for (std::size_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i) {
        EXPECT_EQ(out[at++], r + 0.25 * static_cast<double>(i)) << "from rank " << r;
      }
    }
  });
}

TEST_P(ProcessGroupSizes, ReduceScatterGivesEachRankItsReducedBlock) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    for (DataType dtype : kAllTypes) {
      for (ReduceOp op : kAllOps) {
        const std::size_t block = 5;
        Buffer in(dtype, block * static_cast<std::size_t>(n));
        // Element i of the whole input behaves like element i of an allreduce.
        for (std::size_t i = 0; i < in.count(); ++i) in.set(i, contribution(pg.rank(), i));
        Buffer out(dtype, block);
        pg.reduce_scatter(in.data(), out.data(), block, dtype, op)->wait();
        for (std::size_t i = 0; i < block; ++i) {
          const std::size_t global = static_cast<std::size_t>(pg.rank()) * block + i;
          EXPECT_EQ(out.get(i), expected_reduction(op, dtype, n, global))
              << label(dtype, op) << " element " << i << " on rank " << pg.rank();
        }
      }
    }
  });
}

TEST_P(ProcessGroupSizes, GatherAndScatterMoveBlocksThroughTheRoot) {
  const int n = GetParam();
  const int root = n - 1;
  run_ranks(n, [&](ProcessGroup& pg) {
    const std::vector<float> in = {static_cast<float>(pg.rank()), 0.5f};
    std::vector<float> gathered(pg.rank() == root ? 2 * static_cast<std::size_t>(n) : 0);
    pg.gather(in.data(), gathered.empty() ? nullptr : gathered.data(), 2, DataType::kFloat32, root)
        ->wait();
    if (pg.rank() == root) {
      for (int r = 0; r < n; ++r) {
        EXPECT_EQ(gathered[2 * r], static_cast<float>(r));
        EXPECT_EQ(gathered[2 * r + 1], 0.5f);
      }
    }
    std::vector<std::int32_t> blocks;
    if (pg.rank() == root) {
      for (int r = 0; r < n; ++r) blocks.insert(blocks.end(), {r, r * r, 7});
    }
    std::vector<std::int32_t> mine(3, -1);
    pg.scatter(blocks.empty() ? nullptr : blocks.data(), mine.data(), 3, DataType::kInt32, root)
        ->wait();
    EXPECT_EQ(mine, (std::vector<std::int32_t>{pg.rank(), pg.rank() * pg.rank(), 7}));
  });
}

TEST_P(ProcessGroupSizes, AlltoallTransposesBlocks) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    // Block j of rank i's input is {i, j}; it must land in block i of rank j's output.
    std::vector<std::int64_t> in;
    for (int j = 0; j < n; ++j) in.insert(in.end(), {pg.rank(), j});
    std::vector<std::int64_t> out(in.size(), -1);
    pg.alltoall(in.data(), out.data(), 2, DataType::kInt64)->wait();
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(out[2 * i], i);
      EXPECT_EQ(out[2 * i + 1], pg.rank());
    }
  });
}

TEST_P(ProcessGroupSizes, BarrierHoldsEveryRankUntilAllArrive) {
  const int n = GetParam();
  std::atomic<int> arrived{0};
  run_ranks(n, [&](ProcessGroup& pg) {
    ++arrived;
    pg.barrier()->wait();
    EXPECT_EQ(arrived.load(), n);
  });
}

TEST_P(ProcessGroupSizes, SendRecvMatchByTagAroundARing) {
  const int n = GetParam();
  if (n == 1) GTEST_SKIP() << "send/recv needs a peer; a 1-rank group has none";
  run_ranks(n, [&](ProcessGroup& pg) {
    const int right = (pg.rank() + 1) % n;
    const int left = (pg.rank() + n - 1) % n;
    const std::vector<float> first = {1.0f * static_cast<float>(pg.rank()), 1.5f};
    const std::vector<float> second = {-1.0f, 2.0f, 3.0f * static_cast<float>(pg.rank())};
    auto s1 = pg.send(std::span<const float>(first), right, 7);
    auto s2 = pg.send(std::span<const float>(second), right, 9);
    // Received in the other order than sent: tags, not order, pair them.
    std::vector<float> got_second(3);
    std::vector<float> got_first(2);
    auto r2 = pg.recv(std::span<float>(got_second), left, 9);
    auto r1 = pg.recv(std::span<float>(got_first), left, 7);
    for (const auto& w : {s1, s2, r2, r1}) w->wait();
    EXPECT_EQ(got_first, (std::vector<float>{1.0f * static_cast<float>(left), 1.5f}));
    EXPECT_EQ(got_second, (std::vector<float>{-1.0f, 2.0f, 3.0f * static_cast<float>(left)}));
  });
}

TEST_P(ProcessGroupSizes, OperationsIssuedTogetherOverlapAndCompleteInOrder) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    std::vector<double> a(1000, 1.0);
    std::vector<std::int32_t> b(33, pg.rank());
    auto first = pg.allreduce(std::span<double>(a), ReduceOp::kSum);
    auto second = pg.allreduce(std::span<std::int32_t>(b), ReduceOp::kMax);
    // Work done here overlaps the two collectives running on the group's thread.
    second->wait();
    EXPECT_TRUE(first->is_completed()) << "operations complete in issue order";
    first->wait();
    EXPECT_EQ(a[999], static_cast<double>(n));
    EXPECT_EQ(b[0], n - 1);
  });
}

TEST_P(ProcessGroupSizes, SplitFormsIndependentSubGroups) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
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
    auto nested = sub->split(0, 0);
    ASSERT_NE(nested, nullptr);
    EXPECT_EQ(nested->size(), sub->size());
    nested->barrier()->wait();
  });
}

TEST_P(ProcessGroupSizes, SplitWithNoColorLeavesTheRankOut) {
  const int n = GetParam();
  run_ranks(n, [&](ProcessGroup& pg) {
    auto sub = pg.split(pg.rank() == 0 ? kNoColor : 5, pg.rank());
    if (pg.rank() == 0) {
      EXPECT_EQ(sub, nullptr);
      return;
    }
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->size(), n - 1);
    EXPECT_EQ(sub->rank(), pg.rank() - 1);
    float x = 1;
    sub->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    EXPECT_EQ(x, static_cast<float>(n - 1));
  });
}

INSTANTIATE_TEST_SUITE_P(OneToFiveRanks, ProcessGroupSizes, ::testing::Values(1, 2, 3, 4, 5),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

// Half-way values between two neighbours of the 16-bit formats: the sum must round to the even
// one, as one float addition rounded once would.
TEST(ProcessGroup, SixteenBitSumsRoundToNearestEven) {
  run_ranks(2, [](ProcessGroup& pg) {
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
  });
}

TEST(ProcessGroup, RejectsArgumentsThatAreWrongOnThisRank) {
  run_ranks(2, [](ProcessGroup& pg) {
    float x = 0;
    EXPECT_THROW((void)pg.broadcast(&x, 1, DataType::kFloat32, 2), ValueError);
    EXPECT_THROW((void)pg.reduce(&x, 1, DataType::kFloat32, ReduceOp::kSum, -1), ValueError);
    EXPECT_THROW((void)pg.allreduce(nullptr, 3, DataType::kFloat32, ReduceOp::kSum), ValueError);
    EXPECT_THROW((void)pg.allgatherv(&x, 1, &x, {1}, DataType::kFloat32), ValueError);
    EXPECT_THROW((void)pg.allgatherv(&x, 1, &x, {1, 0, 0}, DataType::kFloat32), ValueError);
    EXPECT_THROW((void)pg.allgatherv(&x, 1, &x, {0, 0}, DataType::kFloat32), ValueError);
    EXPECT_THROW((void)pg.send(&x, 1, DataType::kFloat32, pg.rank(), 0), ValueError);
    EXPECT_THROW((void)pg.recv(&x, 1, DataType::kFloat32, 5, 0), ValueError);
    EXPECT_THROW((void)pg.split(-2, 0), ValueError);
    std::vector<float> too_small(1);
    EXPECT_THROW((void)pg.allgather(std::span<const float>(&x, 1), std::span<float>(too_small)),
                 ValueError);
    try {
      (void)pg.broadcast(&x, 1, DataType::kFloat32, 7);
      ADD_FAILURE() << "no error";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("broadcast on group world: root 7"), std::string::npos)
          << e.what();
    }
    // Rejected calls issue nothing: the ranks are still in step.
    pg.barrier()->wait();
  });
}

TEST(ProcessGroup, OperationsAfterShutdownThrow) {
  run_ranks(2, [](ProcessGroup& pg) {
    pg.barrier()->wait();
    pg.shutdown();
    pg.shutdown();  // idempotent
    float x = 0;
    EXPECT_THROW((void)pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum), CommError);
  });
}

}  // namespace
}  // namespace tessera::comm
