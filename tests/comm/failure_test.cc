// Failures a group must report instead of hanging: a rank that does not come, ranks that issue
// different collectives, a rank that never joins, waits that run out.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "run_ranks.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/process_group.h"
#include "testing/text.h"

namespace tessera::comm {
namespace {

using testing::run_ranks;
using testing::run_threads;
using Clock = std::chrono::steady_clock;

GroupOptions short_timeout(bool check_consistency = false) {
  GroupOptions options;
  options.timeout = std::chrono::seconds(1);
  options.check_consistency = check_consistency;
  return options;
}

using tessera::testing::contains;

TEST(GroupFailure, ARankThatSkipsACollectiveIsNamedInTheTimeout) {
  std::latch others_done(2);
  run_ranks(
      3,
      [&](ProcessGroup& pg) {
        float x = 1;
        pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
        if (pg.rank() == 2) {
          // Skips allreduce #2; stays alive (connections open) until the others have failed.
          others_done.wait();
          return;
        }
        const auto start = Clock::now();
        auto work = pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum);
        try {
          work->wait();
          ADD_FAILURE() << "allreduce completed without rank 2";
        } catch (const TimeoutError& e) {
          const auto waited = Clock::now() - start;
          const std::string what = e.what();
          EXPECT_TRUE(contains(what, "allreduce #2 on group world")) << what;
          EXPECT_TRUE(contains(what, "rank 2 did not arrive")) << what;
          EXPECT_TRUE(contains(what, "rank 2 last completed #1 allreduce")) << what;
          EXPECT_TRUE(contains(what, "timeout 1000 ms")) << what;
          EXPECT_FALSE(contains(what, "rank 1 did not")) << what;
          EXPECT_LT(waited, std::chrono::milliseconds(2500)) << what;
        }
        // The group is unusable now, and says why at once.
        const auto again = Clock::now();
        try {
          pg.barrier()->wait();
          ADD_FAILURE() << "barrier ran on a failed group";
        } catch (const CommError& e) {
          EXPECT_TRUE(contains(e.what(), "barrier #3 on group world: not run")) << e.what();
          EXPECT_TRUE(contains(e.what(), "rank 2 did not arrive")) << e.what();
        }
        EXPECT_LT(Clock::now() - again, std::chrono::milliseconds(500));
        others_done.count_down();
      },
      short_timeout());
}

TEST(GroupFailure, ARankThatLeavesMakesTheOthersFailFastNamingIt) {
  GroupOptions options = short_timeout();
  options.timeout = std::chrono::seconds(10);  // the failure must come long before this
  auto store = std::make_shared<HashStore>();
  std::latch left(1);
  run_threads(3, [&](int rank) {
    auto pg = make_gloo_group(store, rank, 3, options);
    float x = 1;
    pg->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    if (rank == 1) {
      pg->shutdown();  // as a rank does when it exits early
      left.count_down();
      return;
    }
    left.wait();
    const auto start = Clock::now();
    try {
      pg->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
      ADD_FAILURE() << "allreduce completed without rank 1";
    } catch (const TimeoutError& e) {
      ADD_FAILURE() << "a rank that left is not a timeout: " << e.what();
    } catch (const CommError& e) {
      const std::string what = e.what();
      EXPECT_TRUE(contains(what, "allreduce #2 on group world: rank 1 did not arrive")) << what;
      EXPECT_TRUE(contains(what, "rank 1 last completed #1 allreduce")) << what;
      EXPECT_TRUE(contains(what, "has shut its group down")) << what;
    }
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
    pg->shutdown();
  });
}

// A store whose writes hang once `hang()` is called, until `release()`.
class HangingStore final : public Store {
 public:
  HangingStore() : Store(std::chrono::seconds(10)) {}
  void hang() {
    std::lock_guard<std::mutex> lock(mutex_);
    hanging_ = true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      hanging_ = false;
    }
    released_.notify_all();
  }
  void set(const std::string& key, std::string_view value) override {
    std::unique_lock<std::mutex> lock(mutex_);
    released_.wait(lock, [&] { return !hanging_; });
    lock.unlock();
    inner_.set(key, value);
  }
  bool check(const std::vector<std::string>& keys) override { return inner_.check(keys); }
  std::int64_t add(const std::string& key, std::int64_t delta) override {
    return inner_.add(key, delta);
  }
  std::string compare_set(const std::string& key, std::string_view expected,
                          std::string_view desired) override {
    return inner_.compare_set(key, expected, desired);
  }
  bool remove(const std::string& key) override { return inner_.remove(key); }
  std::string description() const override { return "hanging store"; }

 protected:
  std::string do_get(const std::string& key, std::chrono::milliseconds timeout) override {
    return inner_.get(key, timeout);
  }
  void do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override {
    inner_.wait(keys, timeout);
  }

 private:
  HashStore inner_;
  std::mutex mutex_;
  std::condition_variable released_;
  bool hanging_ = false;
};

TEST(GroupFailure, ShutdownDoesNotWaitForAStoreThatHangs) {
  auto store = std::make_shared<HangingStore>();
  std::latch both_reduced(2);
  run_threads(2, [&](int rank) {
    auto pg = make_gloo_group(store, rank, 2, short_timeout());
    float x = 1;
    pg->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    both_reduced.arrive_and_wait();
    store->hang();  // e.g. the host of the store was stopped
    const auto start = Clock::now();
    pg->shutdown();
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
  });
  store->release();  // lets the progress threads left behind finish
}

TEST(GroupFailure, ConsistencyCheckNamesARankWithAnotherCount) {
  run_ranks(
      2,
      [](ProcessGroup& pg) {
        std::vector<float> data(5, 1.0f);
        const std::size_t count = pg.rank() == 1 ? 5 : 4;
        try {
          pg.allreduce(data.data(), count, DataType::kFloat32, ReduceOp::kSum)->wait();
          ADD_FAILURE() << "mismatched allreduce completed";
        } catch (const CollectiveMismatchError& e) {
          const std::string what = e.what();
          EXPECT_TRUE(contains(what, "rank 1 issued allreduce(count=5, dtype=float32, op=sum)"))
              << what;
          EXPECT_TRUE(contains(what, "rank 0 issued allreduce(count=4, dtype=float32, op=sum)"))
              << what;
        }
        // Nothing moved and every rank skipped the call: the group stays usable.
        EXPECT_EQ(data[0], 1.0f);
        pg.allreduce(data.data(), 5, DataType::kFloat32, ReduceOp::kSum)->wait();
        EXPECT_EQ(data[4], 2.0f);
      },
      short_timeout(/*check_consistency=*/true));
}

TEST(GroupFailure, ConsistencyCheckNamesARankThatCallsAnotherCollective) {
  run_ranks(
      3,
      [](ProcessGroup& pg) {
        std::vector<std::int32_t> data(4, pg.rank());
        std::shared_ptr<Work> work =
            pg.rank() == 2 ? pg.broadcast(data.data(), 4, DataType::kInt32, 0)
                           : pg.allreduce(data.data(), 4, DataType::kInt32, ReduceOp::kMax);
        try {
          work->wait();
          ADD_FAILURE() << "mismatched collectives completed";
        } catch (const CollectiveMismatchError& e) {
          EXPECT_TRUE(contains(e.what(), "rank 2 issued broadcast(count=4, dtype=int32, root=0)"))
              << e.what();
          EXPECT_TRUE(contains(e.what(), "#1 on group world")) << e.what();
        }
      },
      short_timeout(/*check_consistency=*/true));
}

TEST(GroupFailure, WithoutTheCheckAMismatchIsNamedWhenItTimesOut) {
  run_ranks(
      2,
      [](ProcessGroup& pg) {
        std::vector<float> data(4, 1.0f);
        std::shared_ptr<Work> work =
            pg.rank() == 1 ? pg.broadcast(data.data(), 4, DataType::kFloat32, 0)
                           : pg.allreduce(data.data(), 4, DataType::kFloat32, ReduceOp::kSum);
        try {
          work->wait();
          ADD_FAILURE() << "mismatched collectives completed";
        } catch (const CollectiveMismatchError& e) {
          const std::string what = e.what();
          const std::string other = pg.rank() == 0 ? "rank 1 issued broadcast(count=4"
                                                   : "rank 0 issued allreduce(count=4";
          EXPECT_TRUE(contains(what, other)) << what;
          EXPECT_TRUE(contains(what, "as collective #1")) << what;
        }
      },
      short_timeout(/*check_consistency=*/false));
}

TEST(GroupFailure, WaitWithATimeoutThrowsAndTheOperationGoesOn) {
  std::latch first_wait_failed(1);
  run_ranks(2, [&](ProcessGroup& pg) {
    float x = 1;
    if (pg.rank() == 1) first_wait_failed.wait();  // rank 0's allreduce cannot finish before
    auto work = pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum);
    if (pg.rank() == 0) {
      try {
        work->wait(std::chrono::milliseconds(20));
        ADD_FAILURE() << "completed without rank 1";
      } catch (const TimeoutError& e) {
        EXPECT_TRUE(
            contains(e.what(), "wait for allreduce #1 on group world: not completed after 20 ms"))
            << e.what();
      }
      EXPECT_FALSE(work->is_completed());
      first_wait_failed.count_down();
    }
    work->wait();
    EXPECT_EQ(x, 2.0f);
  });
}

TEST(GroupFailure, RendezvousNamesTheRanksThatNeverJoined) {
  auto store = std::make_shared<HashStore>();
  GroupOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const auto start = Clock::now();
  try {
    auto group = make_gloo_group(store, 0, 3, options);
    ADD_FAILURE() << "rendezvous completed alone";
  } catch (const TimeoutError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "rendezvous of group world (rank 0 of 3)")) << what;
    EXPECT_TRUE(contains(what, "ranks 1, 2 did not join within")) << what;
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(GroupFailure, RendezvousCatchesRanksThatDisagreeOnTheSize) {
  auto store = std::make_shared<HashStore>();
  GroupOptions options;
  options.timeout = std::chrono::milliseconds(500);
  std::vector<std::string> errors(2);
  run_threads(2, [&](int rank) {
    try {
      auto group = make_gloo_group(store, rank, rank == 0 ? 2 : 3, options);
    } catch (const Error& e) {
      errors[static_cast<std::size_t>(rank)] = e.what();
    }
  });
  EXPECT_TRUE(contains(errors[0], "rank 1 joined with group size 3, this rank with 2"))
      << errors[0];
}

TEST(GroupFailure, ARecvWithoutASendTimesOut) {
  std::latch done(1);
  run_ranks(
      2,
      [&](ProcessGroup& pg) {
        if (pg.rank() == 1) {
          done.wait();
          return;
        }
        float x = 0;
        try {
          pg.recv(&x, 1, DataType::kFloat32, 1, 3)->wait();
          ADD_FAILURE() << "recv completed without a send";
        } catch (const TimeoutError& e) {
          EXPECT_TRUE(contains(e.what(),
                               "recv #1 from rank 1 (tag 3) on group world: no matching "
                               "send from rank 1 within"))
              << e.what();
        }
        done.count_down();
      },
      short_timeout());
}

}  // namespace
}  // namespace tessera::comm
