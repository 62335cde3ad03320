// Every collective on the job's world group, checked by every rank: see world.h.
#include <cstdio>

#include <gtest/gtest.h>

#include "comm/collective_suite.h"
#include "comm/processes/world.h"

namespace tessera::comm::processes {
namespace {

TEST(WorldGroup, AllreduceComputesEveryOpOnEveryDtype) {
  // 20001: odd, no rank count divides it; under MPI small counts go through MPI_Iallreduce and
  // 20001 through the backend's ring. 300007 floats span several shared-memory slots.
  for (std::size_t count :
       {std::size_t{1}, std::size_t{7}, 3 * kSizeUnit + 1, std::size_t{20001}}) {
    suite::check_allreduce_every_op_and_dtype(world(), count);
  }
  suite::check_allreduce_sum_large(world(), 300007);
}

TEST(WorldGroup, AllreduceOnAllocatedMemoryComputesEveryOpOnEveryDtype) {
  for (auto memory : {suite::Memory::kAllocated, suite::Memory::kMixed}) {
    for (std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{20001}}) {
      suite::check_allreduce_every_op_and_dtype(world(), count, memory);
    }
  }
  suite::check_allreduce_sum_large(world(), 300007, suite::Memory::kAllocated);
}

TEST(WorldGroup, ZeroLengthOperationsComplete) { suite::check_zero_length(world()); }

TEST(WorldGroup, BroadcastCopiesTheRootsBuffer) { suite::check_broadcast(world(), kSizeUnit + 5); }

TEST(WorldGroup, ReduceLeavesTheResultOnTheRoot) { suite::check_reduce(world(), kSizeUnit + 3); }

TEST(WorldGroup, AllgatherAndAllgathervConcatenateInRankOrder) {
  suite::check_allgather(world(), kSizeUnit + 3);
  suite::check_allgatherv(world(), 1);
  suite::check_allgatherv(world(), kSizeUnit + 1);
}

TEST(WorldGroup, ReduceScatterGivesEachRankItsBlock) {
  suite::check_reduce_scatter(world(), 5);
  suite::check_reduce_scatter(world(), kSizeUnit + 1);
}

TEST(WorldGroup, GatherScatterAndAlltoallMoveBlocks) {
  suite::check_gather_scatter(world(), 3);
  suite::check_gather_scatter(world(), kSizeUnit + 1);
  suite::check_alltoall(world(), 2);
  suite::check_alltoall(world(), kSizeUnit + 7);
}

TEST(WorldGroup, SendRecvMatchByTag) {
  suite::check_send_recv(world(), 5);
  suite::check_send_recv(world(), 100003);
}

TEST(WorldGroup, OperationsOverlapAndCompleteInOrder) { suite::check_overlap_in_order(world()); }

TEST(WorldGroup, SplitFormsIndependentSubGroups) { suite::check_split(world()); }

// Prints only failures, prefixed with the rank: the other ranks' view of a failing test.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace tessera::comm::processes

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // The job starts here: under mpirun the MPI backend initialises MPI (and finalises it at exit).
  const int rank = tessera::comm::processes::world().rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new tessera::comm::processes::FailurePrinter(rank));
  }
  const int result = RUN_ALL_TESTS();
  tessera::comm::processes::world().shutdown();
  return result;
}
