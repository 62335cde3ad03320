#include "parallel/ps/key_index.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace tessera::parallel::ps {
namespace {

TEST(PsKeyIndex, NumbersKeysInTheOrderFirstSeen) {
  KeyIndex index;
  EXPECT_EQ(index.find_or_insert(~uint64_t{0}).index, 0);
  EXPECT_TRUE(index.find_or_insert(0).inserted);
  EXPECT_EQ(index.find_or_insert(0).index, 1);
  EXPECT_FALSE(index.find_or_insert(~uint64_t{0}).inserted);
  EXPECT_EQ(index.size(), 2);
  EXPECT_EQ(index.key(1), 0u);
}

// Against a std::unordered_map, through growth and clears, with keys that share their low bits
// (as the keys one of several servers holds do).
TEST(PsKeyIndex, AgreesWithAMapThroughGrowthAndClears) {
  std::mt19937_64 random(7);
  KeyIndex index;
  for (int round = 0; round < 4; ++round) {
    std::unordered_map<uint64_t, int64_t> expected;
    const int n = round % 2 == 0 ? 50000 : 300;
    for (int i = 0; i < n; ++i) {
      const uint64_t key = (random() % 20000) * 4;  // repeats, and every key = 0 mod 4
      const auto [it, fresh] = expected.try_emplace(key, static_cast<int64_t>(expected.size()));
      const auto found = index.find_or_insert(key);
      ASSERT_EQ(found.inserted, fresh) << key;
      ASSERT_EQ(found.index, it->second) << key;
    }
    EXPECT_EQ(index.size(), static_cast<int64_t>(expected.size()));
    index.clear();
    EXPECT_EQ(index.size(), 0);
  }
}

}  // namespace
}  // namespace tessera::parallel::ps
