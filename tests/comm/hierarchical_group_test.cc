// The hierarchical group: shared memory within each (simulated) host, Gloo among the hosts'
// leaders. Ranks are threads; a "host" is a set of consecutive ranks with its own segment.
#include "tessera/comm/shm/hierarchical_group.h"

#include <unistd.h>

#include <chrono>
#include <latch>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collective_suite.h"
#include "run_ranks.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using testing::run_threads;
using testing::test_options;

constexpr std::size_t kSlotBytes = 1024;

// Runs one thread per rank of `hosts` (ranks per host), each with a hierarchical group over a
// Gloo global group.
void run_hosts(const std::vector<int>& hosts, const std::function<void(ProcessGroup&)>& fn,
               GroupOptions options = test_options()) {
  const int n = std::accumulate(hosts.begin(), hosts.end(), 0);
  std::vector<int> local_rank;
  std::vector<int> local_size;
  for (int h : hosts) {
    for (int i = 0; i < h; ++i) {
      local_rank.push_back(i);
      local_size.push_back(h);
    }
  }
  auto store = std::make_shared<HashStore>(options.timeout);
  ShmOptions shm;
  shm.segment_name_prefix = "tessera-test-" + std::to_string(::getpid()) + "-hier";
  shm.slot_bytes = kSlotBytes;
  run_threads(n, [&](int rank) {
    const auto i = static_cast<std::size_t>(rank);
    auto group = make_hierarchical_group(make_gloo_group(store, rank, n, options), store,
                                         local_rank[i], local_size[i], shm);
    fn(*group);
    group->shutdown();
  });
}

std::string layout_name(const std::vector<int>& hosts) {
  std::string text;
  for (int h : hosts) {
    if (!text.empty()) text += '_';
    text += std::to_string(h);
  }
  return text;
}

class HierarchicalLayouts : public ::testing::TestWithParam<std::vector<int>> {};

TEST_P(HierarchicalLayouts, EveryOperationOnEveryDtype) {
  run_hosts(GetParam(),
            [](ProcessGroup& pg) { suite::check_everything(pg, kSlotBytes / sizeof(float)); });
}

INSTANTIATE_TEST_SUITE_P(Hosts, HierarchicalLayouts,
                         ::testing::Values(std::vector<int>{1}, std::vector<int>{3},
                                           std::vector<int>{2, 3}, std::vector<int>{1, 1, 1},
                                           std::vector<int>{3, 1, 1}),
                         [](const auto& info) { return "hosts_" + layout_name(info.param); });

TEST(HierarchicalGroup, AverageDividesOnceByTheWholeGroup) {
  run_hosts({2, 1}, [](ProcessGroup& pg) {
    // Integer kAvg truncates the global sum once: (0 + 1 + 2) / 3 = 1, never (0+1)/2 + 2.
    std::vector<std::int32_t> x = {pg.rank(), 10 * pg.rank() + 1};
    pg.allreduce(std::span<std::int32_t>(x), ReduceOp::kAvg)->wait();
    EXPECT_EQ(x, (std::vector<std::int32_t>{1, 11}));
  });
}

TEST(HierarchicalGroup, RanksOfAHostMustBeConsecutive) {
  auto store = std::make_shared<HashStore>();
  // Local ranks 0, 0, 1, 1: hosts interleaved in the global order.
  const std::vector<int> local_rank = {0, 0, 1, 1};
  run_threads(4, [&](int rank) {
    auto global = make_gloo_group(store, rank, 4, test_options());
    try {
      auto group = make_hierarchical_group(std::move(global), store,
                                           local_rank[static_cast<std::size_t>(rank)], 2);
      ADD_FAILURE() << "an interleaved layout was accepted";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("rank 1 starts a new host"), std::string::npos)
          << e.what();
    }
  });
}

TEST(HierarchicalGroup, AStageThatTimesOutNamesItsGroupAndTheMissingRank) {
  GroupOptions options;
  options.timeout = std::chrono::seconds(1);
  std::latch done(1);
  run_hosts(
      {1, 1},
      [&](ProcessGroup& pg) {
        if (pg.rank() == 1) {
          done.wait();  // never joins the allreduce, stays until rank 0 failed
          return;
        }
        float x = 1;
        try {
          pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
          ADD_FAILURE() << "allreduce completed without rank 1";
        } catch (const TimeoutError& e) {
          const std::string what = e.what();
          EXPECT_NE(what.find("allreduce #1 on group world: allreduce #1 on group world/leaders"),
                    std::string::npos)
              << what;
          EXPECT_NE(what.find("rank 1 did not arrive"), std::string::npos) << what;
        }
        done.count_down();
      },
      options);
}

}  // namespace
}  // namespace tessera::comm
