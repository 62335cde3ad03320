// The ProcessGroup contract on the Gloo backend, ranks as threads: every operation of
// collective_suite.h on 1-5 ranks, plus argument checks and shutdown.
#include "tessera/comm/process_group.h"

#include <atomic>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collective_suite.h"
#include "run_ranks.h"
#include "tessera/comm/data_type.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using testing::run_ranks;

class ProcessGroupSizes : public ::testing::TestWithParam<int> {};

TEST_P(ProcessGroupSizes, EveryOperationOnEveryDtype) {
  run_ranks(GetParam(), [](ProcessGroup& pg) {
    suite::check_everything(pg, 1000);
    // 1.2 MB: several segments of Gloo's ring, and a length no rank count divides.
    suite::check_allreduce_sum_large(pg, 300007);
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

INSTANTIATE_TEST_SUITE_P(OneToFiveRanks, ProcessGroupSizes, ::testing::Values(1, 2, 3, 4, 5),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

TEST(ProcessGroup, SixteenBitSumsRoundToNearestEven) {
  run_ranks(2, [](ProcessGroup& pg) { suite::check_sixteen_bit_sums(pg); });
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
