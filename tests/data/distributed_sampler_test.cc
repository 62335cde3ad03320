#include "tessera/data/distributed_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace {

std::vector<int64_t> as_vector(std::span<const int64_t> s) { return {s.begin(), s.end()}; }

// The global order the ranks share, rebuilt by interleaving them: position r + k*W is rank r's
// k-th index.
std::vector<int64_t> interleave(const std::vector<std::vector<int64_t>>& per_rank) {
  std::vector<int64_t> out;
  const size_t per = per_rank.empty() ? 0 : per_rank[0].size();
  for (size_t k = 0; k < per; ++k) {
    for (const auto& rank : per_rank) out.push_back(rank[k]);
  }
  return out;
}

TEST(DistributedSampler, EverySampleOncePerEpochAcrossRanks) {
  for (int64_t n : {1, 2, 10, 11, 101}) {
    for (int world = 1; world <= 7; ++world) {
      for (bool drop_last : {false, true}) {
        for (bool shuffle : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "N=" << n << " W=" << world << " drop_last="
                                            << drop_last << " shuffle=" << shuffle);
          const SamplerOptions options{.seed = 42, .shuffle = shuffle, .drop_last = drop_last};
          std::vector<std::vector<int64_t>> per_rank;
          for (int rank = 0; rank < world; ++rank) {
            DistributedSampler s(n, rank, world, options);
            s.set_epoch(3);
            per_rank.push_back(as_vector(s.indices()));
            const int64_t expected = drop_last ? n / world : (n + world - 1) / world;
            ASSERT_EQ(s.num_samples(), expected);
            ASSERT_EQ(static_cast<int64_t>(per_rank.back().size()), expected);
            ASSERT_EQ(s.total_size(), expected * world);
          }
          std::map<int64_t, int> seen;
          for (const auto& rank : per_rank) {
            for (int64_t i : rank) {
              ASSERT_GE(i, 0);
              ASSERT_LT(i, n);
              ++seen[i];
            }
          }
          const std::vector<int64_t> order = interleave(per_rank);
          if (drop_last) {
            // floor(N/W)*W distinct samples, each once; the rest dropped.
            EXPECT_EQ(static_cast<int64_t>(seen.size()), (n / world) * world);
            for (const auto& [index, count] : seen) EXPECT_EQ(count, 1) << "index " << index;
          } else {
            // All N seen; the padding repeats the start of the shared order.
            EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
            const int64_t total = static_cast<int64_t>(order.size());
            for (int64_t p = n; p < total; ++p) EXPECT_EQ(order[p], order[p % n]);
            std::map<int64_t, int> first_n;
            for (int64_t p = 0; p < n; ++p) ++first_n[order[p]];
            EXPECT_EQ(static_cast<int64_t>(first_n.size()), n);
          }
          if (!shuffle) {
            for (size_t p = 0; p < order.size(); ++p) {
              EXPECT_EQ(order[p], static_cast<int64_t>(p) % n);
            }
          }
        }
      }
    }
  }
}

TEST(DistributedSampler, EmptyDatasetGivesNoIndices) {
  DistributedSampler s(0, 1, 3);
  EXPECT_EQ(s.num_samples(), 0);
  EXPECT_TRUE(s.next(5).empty());
}

TEST(DistributedSampler, AllRanksComputeTheSamePermutation) {
  // Each rank's own sampler yields its slice of one shared order: the interleaving of the ranks
  // is a permutation of 0..N-1 and equals the one-rank order.
  const int64_t n = 100;
  const int world = 4;
  DistributedSampler single(n, 0, 1, {.seed = 7});
  single.set_epoch(5);
  std::vector<std::vector<int64_t>> per_rank;
  for (int rank = 0; rank < world; ++rank) {
    DistributedSampler s(n, rank, world, {.seed = 7});
    s.set_epoch(5);
    per_rank.push_back(as_vector(s.indices()));
  }
  EXPECT_EQ(interleave(per_rank), as_vector(single.indices()));
  // And it is shuffled, not the identity.
  std::vector<int64_t> identity(n);
  for (int64_t i = 0; i < n; ++i) identity[i] = i;
  EXPECT_NE(as_vector(single.indices()), identity);
}

TEST(DistributedSampler, OrderDependsOnSeedAndEpochOnly) {
  DistributedSampler a(1000, 1, 3, {.seed = 1});
  DistributedSampler b(1000, 1, 3, {.seed = 1});
  a.set_epoch(0);
  const auto epoch0 = as_vector(a.indices());
  a.set_epoch(1);
  const auto epoch1 = as_vector(a.indices());
  EXPECT_NE(epoch0, epoch1);
  b.set_epoch(1);
  EXPECT_EQ(as_vector(b.indices()), epoch1);
  a.set_epoch(0);
  EXPECT_EQ(as_vector(a.indices()), epoch0);
  DistributedSampler c(1000, 1, 3, {.seed = 2});
  EXPECT_NE(as_vector(c.indices()), epoch0);
}

TEST(DistributedSampler, NextHandsOutIndicesInOrderThenNone) {
  DistributedSampler s(11, 2, 3, {.shuffle = false});
  EXPECT_EQ(s.num_samples(), 4);  // padded: 2, 5, 8, then position 11 wraps to 0
  EXPECT_EQ(as_vector(s.next(3)), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_EQ(s.position(), 3);
  EXPECT_EQ(as_vector(s.next(3)), (std::vector<int64_t>{0}));
  EXPECT_TRUE(s.next(3).empty());
  EXPECT_EQ(s.position(), 4);
}

TEST(DistributedSampler, StateRestoresMidEpochExactly) {
  DistributedSampler run(101, 2, 3, {.seed = 9});
  run.set_epoch(4);
  (void)run.next(10);
  const SamplerState saved = run.state();
  EXPECT_EQ(saved, (SamplerState{4, 30})) << "10 indices on each of 3 ranks";
  const auto rest = as_vector(run.next(1000));
  ASSERT_EQ(static_cast<int64_t>(rest.size()), run.num_samples() - 10);

  DistributedSampler resumed(101, 2, 3, {.seed = 9});
  resumed.set_state(saved);
  EXPECT_EQ(resumed.state(), saved);
  EXPECT_EQ(as_vector(resumed.next(1000)), rest);
}

TEST(DistributedSampler, StateCountsTheOrderPositionsAllRanksConsumed) {
  DistributedSampler s(25, 1, 4, {.seed = 2});
  EXPECT_EQ(s.num_samples(), 7);
  (void)s.next(3);
  EXPECT_EQ(s.state(), (SamplerState{0, 12}));
  (void)s.next(100);
  // Past the data into the padding: the epoch is over.
  EXPECT_EQ(s.state(), (SamplerState{0, 25}));
}

// The one-rank order of an epoch: the shared order every world size deals from.
std::vector<int64_t> epoch_order(int64_t n, int64_t epoch) {
  DistributedSampler one(n, 0, 1, {.seed = 5});
  one.set_epoch(epoch);
  return as_vector(one.indices());
}

TEST(DistributedSampler, AStateFromAnyWorldSizeDealsExactlyTheRestOfTheOrder) {
  for (int64_t n : {1, 7, 24, 25}) {
    const std::vector<int64_t> order = epoch_order(n, 3);
    for (int world = 1; world <= 5; ++world) {
      for (int64_t start = 0; start <= n; ++start) {
        for (bool drop_last : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "N=" << n << " W=" << world << " from " << start
                                            << " drop_last=" << drop_last);
          std::vector<std::vector<int64_t>> per_rank;
          for (int rank = 0; rank < world; ++rank) {
            DistributedSampler s(n, rank, world, {.seed = 5, .drop_last = drop_last});
            s.set_state({3, start});
            per_rank.push_back(as_vector(s.indices()));
          }
          const int64_t left = n - start;
          const int64_t dealt =
              drop_last ? left / world * world : (left + world - 1) / world * world;
          std::vector<int64_t> expected;
          for (int64_t p = start; p < start + dealt; ++p) expected.push_back(order[p % n]);
          EXPECT_EQ(interleave(per_rank), expected);
        }
      }
    }
  }
}

TEST(DistributedSampler, UnpaddedDealingGivesEverySampleToExactlyOneRank) {
  for (int64_t n : {0, 1, 10, 11}) {
    for (int world = 1; world <= 4; ++world) {
      std::vector<int64_t> all;
      for (int rank = 0; rank < world; ++rank) {
        DistributedSampler s(n, rank, world, {.shuffle = false, .pad = false});
        EXPECT_EQ(std::ssize(s.indices()), std::max<int64_t>(0, (n - rank + world - 1) / world));
        all.insert(all.end(), s.indices().begin(), s.indices().end());
      }
      std::sort(all.begin(), all.end());
      std::vector<int64_t> each_once(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) each_once[static_cast<size_t>(i)] = i;
      EXPECT_EQ(all, each_once) << "N=" << n << " W=" << world;
    }
  }
}

TEST(DistributedSampler, InvalidArgumentsAreValueErrors) {
  EXPECT_THROW_WITH(DistributedSampler(-1, 0, 1), ValueError, "dataset_size is -1");
  EXPECT_THROW_WITH(DistributedSampler(10, 0, 0), ValueError, "world_size is 0");
  EXPECT_THROW_WITH(DistributedSampler(10, 3, 3), ValueError, "rank 3", "[0, 3)");
  EXPECT_THROW_WITH(DistributedSampler(10, -1, 3), ValueError, "rank -1");
  DistributedSampler s(10, 0, 3);
  EXPECT_THROW_WITH(s.set_state({0, 11}), ValueError, "position 11", "[0, 10]");
  EXPECT_THROW_WITH(s.set_state({0, -1}), ValueError, "position -1");
  EXPECT_THROW_WITH(s.set_state({-1, 0}), ValueError, "epoch -1");
  EXPECT_THROW_WITH(s.set_epoch(-2), ValueError, "epoch -2");
  EXPECT_THROW_WITH(s.next(-1), ValueError, "n is -1");
}

}  // namespace
}  // namespace tessera::data
