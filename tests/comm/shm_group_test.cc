// The shared-memory backend: every operation on 1-5 ranks (as threads), failures named instead
// of hangs, and a segment that never outlives the group in /dev/shm.
#include "tessera/comm/shm/shm_group.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collective_suite.h"
#include "run_ranks.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"
#include "testing/text.h"

namespace tessera::comm {
namespace shm_group_test {

using Clock = std::chrono::steady_clock;
using testing::run_threads;
using testing::test_options;

// Small slots: every test crosses chunk boundaries with small buffers (256 float32 per slot).
constexpr std::size_t kTestSlotBytes = 1024;
constexpr std::size_t kTestSlotElements = kTestSlotBytes / sizeof(float);

// A segment prefix no other test (or process) uses, to find what a test leaves in /dev/shm.
std::string unique_prefix(const std::string& test) {
  return "tessera-test-" + std::to_string(::getpid()) + "-" + test;
}

// Names in /dev/shm that start with `prefix`.
std::vector<std::string> leftovers(const std::string& prefix) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) found.push_back(name);
  }
  return found;
}

ShmOptions test_shm_options(const std::string& test, std::size_t slot_bytes = kTestSlotBytes) {
  ShmOptions options;
  options.segment_name_prefix = unique_prefix(test);
  options.slot_bytes = slot_bytes;
  return options;
}

void run_shm_ranks(int n, const std::function<void(ProcessGroup&)>& fn, ShmOptions shm,
                   GroupOptions options = test_options()) {
  auto store = std::make_shared<HashStore>(options.timeout);
  run_threads(n, [&](int rank) {
    auto group = make_shm_group(store, rank, n, options, shm);
    fn(*group);
    group->shutdown();
  });
}

using tessera::testing::contains;

GroupOptions short_timeout() {
  GroupOptions options;
  options.timeout = std::chrono::seconds(1);
  return options;
}

class ShmGroupSizes : public ::testing::TestWithParam<int> {};

TEST_P(ShmGroupSizes, EveryOperationOnEveryDtypeAcrossChunks) {
  const ShmOptions shm = test_shm_options("every");
  run_shm_ranks(
      GetParam(), [](ProcessGroup& pg) { suite::check_everything(pg, kTestSlotElements); }, shm);
  EXPECT_TRUE(leftovers(shm.segment_name_prefix).empty());
}

TEST_P(ShmGroupSizes, SendRecvStreamsMessagesLargerThanTheRing) {
  // 400 KB messages through 128 KiB rings, both directions at once.
  run_shm_ranks(
      GetParam(), [](ProcessGroup& pg) { suite::check_send_recv(pg, 100003); },
      test_shm_options("p2p"));
}

TEST_P(ShmGroupSizes, AllreducePipelinesBuffersOfManyDefaultSlots) {
  // 3 MiB + 4 bytes through 256 KiB slots.
  run_shm_ranks(
      GetParam(), [](ProcessGroup& pg) { suite::check_allreduce_sum_large(pg, 786433); },
      test_shm_options("large", kDefaultShmSlotBytes));
}

TEST_P(ShmGroupSizes, AllreduceOnAllocatedBuffersOfManyDefaultSlots) {
  run_shm_ranks(
      GetParam(),
      [](ProcessGroup& pg) {
        suite::check_allreduce_sum_large(pg, 786433, suite::Memory::kAllocated);
        suite::check_allreduce_sum_large(pg, 786433, suite::Memory::kMixed);
      },
      test_shm_options("pooled", kDefaultShmSlotBytes));
}

INSTANTIATE_TEST_SUITE_P(OneToFiveRanks, ShmGroupSizes, ::testing::Values(1, 2, 3, 4, 5),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

// Whether `p` lies in a mapping of a /dev/shm object (our segments, unlinked once mapped).
bool in_shared_memory(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &begin, &end) != 2) continue;
    if (address >= begin && address < end) return line.find("/dev/shm/") != std::string::npos;
  }
  return false;
}

TEST(ShmGroup, AllocatedBuffersComeFromThePoolAndOutliveTheGroup) {
  std::vector<std::shared_ptr<std::byte[]>> kept(2);
  run_shm_ranks(
      2,
      [&](ProcessGroup& pg) {
        auto a = pg.allocate(1000);
        auto b = pg.allocate(5000);
        ASSERT_TRUE(in_shared_memory(a.get()));
        ASSERT_TRUE(in_shared_memory(b.get()));
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.get()) % 64, 0U);
        // Disjoint, and a freed range is handed out again.
        EXPECT_TRUE(b.get() >= a.get() + 1000 || b.get() + 5000 <= a.get());
        std::byte* first = a.get();
        a.reset();
        EXPECT_EQ(pg.allocate(1000).get(), first);
        auto* x = reinterpret_cast<float*>(b.get());
        std::fill_n(x, 1250, static_cast<float>(pg.rank() + 1));
        pg.allreduce(x, 1250, DataType::kFloat32, ReduceOp::kSum)->wait();
        EXPECT_EQ(x[0], 3.0f);
        EXPECT_EQ(x[1249], 3.0f);
        kept[static_cast<std::size_t>(pg.rank())] = std::move(b);
      },
      test_shm_options("allocate"));
  // The groups are shut down; their buffers are still mapped and usable.
  for (auto& buffer : kept) {
    std::fill_n(buffer.get(), 5000, std::byte{7});
    EXPECT_EQ(buffer[4999], std::byte{7});
  }
}

TEST(ShmGroup, APoolTooSmallOrNoneGivesOrdinaryMemoryThatStillWorks) {
  for (std::size_t pool : {std::size_t{8192}, std::size_t{0}}) {
    ShmOptions shm = test_shm_options("small-pool");
    shm.pool_bytes = pool;
    run_shm_ranks(
        3,
        [&](ProcessGroup& pg) {
          auto big = pg.allocate(100000);
          EXPECT_FALSE(in_shared_memory(big.get())) << "pool of " << pool << " bytes";
          EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big.get()) % 64, 0U);
          suite::check_allreduce_every_op_and_dtype(pg, 20001, suite::Memory::kAllocated);
          suite::check_allreduce_every_op_and_dtype(pg, 7, suite::Memory::kMixed);
        },
        shm);
  }
}

TEST(ShmGroup, SixteenBitSumsRoundToNearestEven) {
  run_shm_ranks(2, suite::check_sixteen_bit_sums, test_shm_options("half"));
}

TEST(ShmGroup, TheSegmentIsGoneFromDevShmOnceEveryRankMappedIt) {
  const ShmOptions shm = test_shm_options("unlink");
  auto store = std::make_shared<HashStore>();
  std::latch created(3);
  std::latch checked(1);
  run_threads(3, [&](int rank) {
    auto group = make_shm_group(store, rank, 3, test_options(), shm);
    created.count_down();
    if (rank == 0) {
      created.wait();
      // Every rank is set up and the group works, yet nothing is left under /dev/shm.
      EXPECT_EQ(leftovers(shm.segment_name_prefix), std::vector<std::string>{});
      checked.count_down();
    }
    checked.wait();
    float x = 1;
    group->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    EXPECT_EQ(x, 3.0f);
  });
  EXPECT_TRUE(leftovers(shm.segment_name_prefix).empty());
}

TEST(ShmGroup, ARankThatNeverArrivesIsNamedWithinTheTimeout) {
  const ShmOptions shm = test_shm_options("absent");
  std::latch others_done(2);
  run_shm_ranks(
      3,
      [&](ProcessGroup& pg) {
        std::vector<float> x(3000, 1.0f);
        pg.allreduce(std::span<float>(x), ReduceOp::kSum)->wait();
        if (pg.rank() == 2) {
          others_done.wait();  // skips allreduce #2, stays in the group until the others failed
          return;
        }
        const auto start = Clock::now();
        try {
          pg.allreduce(std::span<float>(x), ReduceOp::kSum)->wait();
          ADD_FAILURE() << "allreduce completed without rank 2";
        } catch (const TimeoutError& e) {
          const auto waited = Clock::now() - start;
          const std::string what = e.what();
          EXPECT_TRUE(contains(what, "allreduce #2 on group world")) << what;
          EXPECT_TRUE(contains(what, "rank 2 did not arrive within")) << what;
          EXPECT_TRUE(contains(what, "rank 2 last completed #1 allreduce(count=3000")) << what;
          EXPECT_TRUE(contains(what, "timeout 1000 ms")) << what;
          EXPECT_FALSE(contains(what, "rank 1 did not")) << what;
          EXPECT_GE(waited, std::chrono::milliseconds(900)) << what;
          EXPECT_LT(waited, std::chrono::milliseconds(1500)) << what;
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
        EXPECT_LT(Clock::now() - again, std::chrono::milliseconds(200));
        others_done.count_down();
      },
      shm, short_timeout());
  EXPECT_TRUE(leftovers(shm.segment_name_prefix).empty());
}

TEST(ShmGroup, ARankThatShutsDownMakesTheOthersFailAtOnceNamingIt) {
  run_shm_ranks(
      3,
      [&](ProcessGroup& pg) {
        pg.barrier()->wait();
        if (pg.rank() == 1) {
          pg.shutdown();
          return;
        }
        GroupOptions options = pg.options();
        const auto start = Clock::now();
        float x = 1;
        try {
          pg.allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
          ADD_FAILURE() << "allreduce completed without rank 1";
        } catch (const CommError& e) {
          EXPECT_TRUE(contains(e.what(), "rank 1 has shut its group down")) << e.what();
          EXPECT_TRUE(contains(e.what(), "rank 1 last completed #1 barrier")) << e.what();
        }
        EXPECT_LT(Clock::now() - start, options.timeout / 4);
      },
      test_shm_options("leave"));
}

TEST(ShmGroup, RanksIssuingDifferentCollectivesGetAMismatchErrorNamingTheRank) {
  run_shm_ranks(
      3,
      [&](ProcessGroup& pg) {
        std::vector<float> x(10, 1.0f);
        const auto start = Clock::now();
        try {
          if (pg.rank() == 2) {
            pg.broadcast(x.data(), x.size(), DataType::kFloat32, 0)->wait();
          } else {
            pg.allreduce(std::span<float>(x), ReduceOp::kSum)->wait();
          }
          ADD_FAILURE() << "mismatched collectives completed on rank " << pg.rank();
        } catch (const CollectiveMismatchError& e) {
          const std::string what = e.what();
          EXPECT_TRUE(contains(what, "collectives differ across ranks")) << what;
          if (pg.rank() != 2) {
            EXPECT_TRUE(contains(what, "rank 2")) << what;
            EXPECT_TRUE(contains(what, "broadcast(count=10, dtype=float32, root=0)")) << what;
          }
        }
        EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
      },
      test_shm_options("mismatch"));
}

TEST(ShmGroup, DifferentCountsAreAMismatchNotACorruption) {
  run_shm_ranks(
      2,
      [&](ProcessGroup& pg) {
        std::vector<float> x(pg.rank() == 0 ? 100 : 5000, 1.0f);
        EXPECT_THROW(pg.allreduce(std::span<float>(x), ReduceOp::kSum)->wait(),
                     CollectiveMismatchError);
      },
      test_shm_options("count"));
}

TEST(ShmGroup, RendezvousNamesTheRanksThatNeverCame) {
  const ShmOptions shm = test_shm_options("rendezvous");
  auto store = std::make_shared<HashStore>();
  run_threads(3, [&](int rank) {
    if (rank == 1) return;  // never creates its group
    const auto start = Clock::now();
    try {
      auto group = make_shm_group(store, rank, 3, short_timeout(), shm);
      ADD_FAILURE() << "group formed without rank 1";
    } catch (const TimeoutError& e) {
      EXPECT_TRUE(contains(e.what(), "rank 1 did not map the segment")) << e.what();
      EXPECT_TRUE(contains(e.what(), "shared-memory group world")) << e.what();
    }
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
  });
  EXPECT_TRUE(leftovers(shm.segment_name_prefix).empty());
}

TEST(ShmGroup, ARecvWithoutASendTimesOutNamingThePeer) {
  run_shm_ranks(
      2,
      [&](ProcessGroup& pg) {
        if (pg.rank() == 1) return;
        float x = 0;
        try {
          pg.recv(&x, 1, DataType::kFloat32, 1, 4)->wait();
          ADD_FAILURE() << "recv completed without a send";
        } catch (const TimeoutError& e) {
          EXPECT_TRUE(contains(e.what(), "recv #1 from rank 1 (tag 4) on group world")) << e.what();
          EXPECT_TRUE(contains(e.what(), "no matching send from rank 1")) << e.what();
        }
      },
      test_shm_options("recv"), short_timeout());
}

TEST(ShmGroup, RejectsBadOptions) {
  auto store = std::make_shared<HashStore>();
  ShmOptions bad_prefix;
  bad_prefix.segment_name_prefix = "a/b";
  EXPECT_THROW((void)make_shm_group(store, 0, 1, {}, bad_prefix), ValueError);
  ShmOptions bad_slot;
  bad_slot.slot_bytes = 100;
  EXPECT_THROW((void)make_shm_group(store, 0, 1, {}, bad_slot), ValueError);
  bad_slot.slot_bytes = 128;
  EXPECT_THROW((void)make_shm_group(store, 0, 3, {}, bad_slot), ValueError);
  EXPECT_THROW((void)make_shm_group(store, 3, 3, {}, {}), ValueError);
}

// A real second process, killed outright in the middle of the job: the survivor names it long
// before its timeout, and nothing is left in /dev/shm.
TEST(ShmGroup, AProcessThatDiesIsNamedBeforeTheTimeout) {
  const ShmOptions shm = test_shm_options("killed");
  GroupOptions options;
  options.timeout = std::chrono::seconds(20);
  // Fork while this process has one thread: a child forked after the store's server thread
  // started may inherit a lock (the sanitizers' allocator's) that no thread will release, and hang.
  int port_pipe[2];
  ASSERT_EQ(::pipe(port_pipe), 0);
  const std::string token = make_job_token();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: rank 1. It must not return into gtest; it dies by SIGKILL, as a crash would.
    try {
      ::close(port_pipe[1]);
      int port = 0;
      if (::read(port_pipe[0], &port, sizeof(port)) != sizeof(port)) ::_exit(5);
      TcpStoreOptions client;
      client.port = port;
      client.token = token;
      auto group = make_shm_group(std::make_shared<TcpStore>(client), 1, 2, options, shm);
      float x = 1;
      group->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
      ::kill(::getpid(), SIGKILL);  // with the group still open
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(4);
  }
  ::close(port_pipe[0]);
  TcpStoreServerOptions server_options;
  server_options.token = token;
  TcpStoreServer server(server_options);
  const int port = server.port();
  ASSERT_EQ(::write(port_pipe[1], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(port_pipe[1]);
  TcpStoreOptions client;
  client.port = port;
  client.token = token;
  auto group = make_shm_group(std::make_shared<TcpStore>(client), 0, 2, options, shm);
  float x = 1;
  group->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
  EXPECT_EQ(x, 2.0f);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  const auto start = Clock::now();
  try {
    group->allreduce(&x, 1, DataType::kFloat32, ReduceOp::kSum)->wait();
    ADD_FAILURE() << "allreduce completed without rank 1";
  } catch (const CommError& e) {
    EXPECT_TRUE(contains(e.what(), "rank 1 (pid " + std::to_string(child) + ") exited"))
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  group->shutdown();
  EXPECT_TRUE(leftovers(shm.segment_name_prefix).empty());
}

}  // namespace shm_group_test
}  // namespace tessera::comm
