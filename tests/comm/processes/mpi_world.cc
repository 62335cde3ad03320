// The world group of the MPI backend's process tests (ctest runs them under `mpirun -np N` for
// N = 1..5, see CMakeLists.txt here), and the tests that only MPI has.
#include "tessera/comm/mpi/mpi_group.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "comm/processes/world.h"
#include "tessera/comm/errors.h"

namespace tessera::comm::processes {

// Creating an MPI group is collective over MPI_COMM_WORLD.
ProcessGroup& world() {
  static std::unique_ptr<ProcessGroup> group = make_mpi_group(test_options());
  return *group;
}

namespace {

using Clock = std::chrono::steady_clock;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(MpiGroup, RankAndSizeAreMpis) {
  int rank = -1;
  int size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(world().rank(), rank);
  EXPECT_EQ(world().size(), size);
  EXPECT_EQ(world().name(), "world");
}

TEST(MpiGroup, ConsistencyCheckNamesARankWithAnotherCount) {
  if (world().size() == 1) GTEST_SKIP() << "a mismatch needs two ranks";
  GroupOptions options = test_options();
  options.name = "checked";
  options.check_consistency = true;
  auto group = make_mpi_group(options);
  std::vector<float> x(group->rank() == 1 ? 9 : 8, 1.0f);
  try {
    group->allreduce(std::span<float>(x), ReduceOp::kSum)->wait();
    ADD_FAILURE() << "allreduce with different counts ran";
  } catch (const CollectiveMismatchError& e) {
    EXPECT_TRUE(contains(e.what(), "allreduce #1 on group checked")) << e.what();
    EXPECT_TRUE(contains(e.what(), "rank 1 issued allreduce(count=9")) << e.what();
  }
  // The check ran instead of the collective: the group is still usable.
  std::int64_t one = 1;
  group->allreduce(&one, 1, DataType::kInt64, ReduceOp::kSum)->wait();
  EXPECT_EQ(one, group->size());
  group->shutdown();
}

TEST(MpiGroup, ARecvWithoutASendTimesOutNamingThePeer) {
  if (world().size() == 1) GTEST_SKIP() << "send/recv needs a peer";
  GroupOptions options = test_options(std::chrono::milliseconds(500));
  options.name = "p2p-timeout";
  auto group = make_mpi_group(options);
  if (group->rank() == 0) {
    float x = 0;
    const auto start = Clock::now();
    try {
      group->recv(&x, 1, DataType::kFloat32, 1, 99)->wait();
      ADD_FAILURE() << "recv completed without a send";
    } catch (const TimeoutError& e) {
      EXPECT_TRUE(contains(e.what(), "recv #1 from rank 1 (tag 99) on group p2p-timeout"))
          << e.what();
      EXPECT_TRUE(contains(e.what(), "no matching send from rank 1")) << e.what();
    }
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  }
  // Ranks meet again on the world group, so none leaves before rank 0 timed out.
  world().barrier()->wait();
}

TEST(MpiGroup, RejectsTagsAboveMpisLimit) {
  if (world().size() == 1) GTEST_SKIP() << "send needs a peer";
  int* tag_ub = nullptr;
  int found = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
  ASSERT_NE(found, 0);
  // MPI_TAG_UB is an int: the largest uint32 tag is always above it.
  ASSERT_LT(static_cast<long long>(*tag_ub), 0xffffffffLL);
  float x = 0;
  EXPECT_THROW((void)world().send(&x, 1, DataType::kFloat32, (world().rank() + 1) % world().size(),
                                  0xffffffffu),
               ValueError);
}

// Run alone (ctest's mpi_group_timeout, 2 ranks): rank 0 enters a barrier the others never
// join. MPI cannot cancel it, so this rank's MPI_Finalize is skipped at exit and mpirun ends the
// job; ctest passes on the line printed below rather than on the exit status.
TEST(MpiTimeout, ACollectiveARankSkipsTimesOutNamingTheOperationAndGroup) {
  if (world().size() < 2) GTEST_SKIP() << "needs a rank that does not come";
  GroupOptions options = test_options(std::chrono::milliseconds(1000));
  options.name = "lonely";
  auto group = make_mpi_group(options);
  if (group->rank() != 0) {
    // Waits where rank 0 never comes: mpirun ends this process once rank 0 exits.
    world().barrier()->wait();
    return;
  }
  const auto start = Clock::now();
  try {
    group->barrier()->wait();
    ADD_FAILURE() << "barrier completed without the other ranks";
  } catch (const TimeoutError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "barrier #1 on group lonely: not completed within")) << what;
    EXPECT_TRUE(contains(what, "timeout 1000 ms")) << what;
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
    std::printf("mpi timeout test: rank 0 got: %s\n", what.c_str());
  }
  // Later operations fail at once, repeating the first failure.
  try {
    group->barrier()->wait();
    ADD_FAILURE() << "barrier ran on a failed group";
  } catch (const CommError& e) {
    EXPECT_TRUE(contains(e.what(), "barrier #2 on group lonely: not run")) << e.what();
  }
  if (!::testing::Test::HasFailure()) std::printf("MPI-TIMEOUT-TEST-OK\n");
  std::fflush(stdout);
}

}  // namespace
}  // namespace tessera::comm::processes
