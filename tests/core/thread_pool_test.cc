#include "tessera/core/thread_pool.h"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/core/error.h"

namespace tessera {
namespace {

// Sets the intra-op thread count for one test and restores it afterwards.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(num_threads()) { set_core_num_threads(n); }
  ~ThreadCount() { set_core_num_threads(previous_); }

 private:
  int previous_;
};

TEST(ParallelFor, CoversEveryIndexExactlyOnce) {
  ThreadCount threads(4);
  for (int64_t n : {1, 2, 3, 7, 100, 1001}) {
    for (int64_t grain : {1, 3, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(n, grain, [&](int64_t begin, int64_t end) {
        ASSERT_LE(0, begin);
        ASSERT_LT(begin, end);
        ASSERT_LE(end, n);
        for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1)
            << "n " << n << " grain " << grain << " index " << i;
      }
    }
  }
}

TEST(ParallelFor, SplitsIntoAtMostNumThreadsContiguousChunks) {
  ThreadCount threads(3);
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  parallel_for(1000, 1, [&](int64_t begin, int64_t end) {
    std::lock_guard lock(mutex);
    chunks.emplace_back(begin, end);
  });
  EXPECT_GE(chunks.size(), 1u);
  EXPECT_LE(chunks.size(), 3u);
}

TEST(ParallelFor, DoesNothingForAnEmptyRange) {
  int calls = 0;
  parallel_for(0, 1, [&](int64_t, int64_t) { ++calls; });
  parallel_for(-5, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, PropagatesAnExceptionFromAChunk) {
  ThreadCount threads(4);
  EXPECT_THROW(parallel_for(100, 1,
                            [](int64_t begin, int64_t end) {
                              if (begin <= 77 && 77 < end) throw ValueError("index 77");
                            }),
               ValueError);
  // The pool still works afterwards.
  std::atomic<int64_t> total{0};
  parallel_for(100, 1, [&](int64_t begin, int64_t end) { total += end - begin; });
  EXPECT_EQ(total.load(), 100);
}

TEST(ParallelFor, PropagatesAnExceptionFromTheCallingThreadsChunk) {
  ThreadCount threads(2);
  EXPECT_THROW(parallel_for(10, 1,
                            [](int64_t begin, int64_t) {
                              if (begin == 0) throw std::runtime_error("first chunk");
                            }),
               std::runtime_error);
}

TEST(ParallelFor, RunsNestedCallsInlineAndCompletely) {
  ThreadCount threads(4);
  std::vector<std::atomic<int>> hits(64);
  parallel_for(8, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      parallel_for(8, 1, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) hits[static_cast<size_t>(i * 8 + j)]++;
      });
    }
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadCount, RejectsLessThanOneThread) {
  EXPECT_THROW(set_core_num_threads(0), ValueError);
  EXPECT_GE(num_threads(), 1);
}

}  // namespace
}  // namespace tessera
