// Shared memory that is not what it should be: a segment someone else made or can reach, and
// corrupt values in a group's own segment, written by the test into the mapping. Each fails with
// a CommError naming the rank and the field, never a crash or a read out of bounds.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <latch>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "call_signature.h"
#include "run_ranks.h"
#include "shm/p2p_wire.h"
#include "shm/segment.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/shm/shm_group.h"
#include "testing/text.h"

namespace tessera::comm {
namespace shm_corruption_test {

using shm::Layout;
using shm::shared;

constexpr std::size_t kSlotBytes = 1024;

using tessera::testing::contains;

std::string unique_name(const std::string& test) {
  return "tessera-test-" + std::to_string(::getpid()) + "-" + test;
}

ShmOptions options_for(const std::string& test) {
  ShmOptions options;
  options.segment_name_prefix = unique_name(test);
  options.slot_bytes = kSlotBytes;
  return options;
}

// The layout make_shm_group gives `size` ranks with options_for().
Layout layout_for(int size) { return Layout(size, kSlotBytes, kDefaultShmPoolBytes); }

// Where this process maps the segment whose name starts with `prefix` (every rank of a group
// maps it; any of the mappings reaches the same memory).
std::byte* mapping_of(const std::string& prefix) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    unsigned long long begin = 0;
    unsigned long long offset = 1;
    if (std::sscanf(line.c_str(), "%llx-%*x %*s %llx", &begin, &offset) != 2) continue;
    if (offset == 0 && contains(line, "/dev/shm/" + prefix)) {
      return reinterpret_cast<std::byte*>(begin);
    }
  }
  ADD_FAILURE() << "no mapping of /dev/shm/" << prefix << "*";
  return nullptr;
}

// Runs two ranks of a shared-memory group as threads: rank 0 calls `corrupt` with the segment,
// then rank 1 calls `victim` with its group. Rank 0 stays in the group, idle, until rank 1 is done.
void corrupt_then_run(const std::string& test,
                      const std::function<void(std::byte* base, const Layout&)>& corrupt,
                      const std::function<void(ProcessGroup&)>& victim) {
  const ShmOptions shm = options_for(test);
  auto store = std::make_shared<HashStore>();
  std::latch corrupted(1);
  std::latch done(1);
  testing::run_threads(2, [&](int rank) {
    auto group = make_shm_group(store, rank, 2, testing::test_options(), shm);
    if (rank == 0) {
      const Layout layout = layout_for(2);
      if (std::byte* base = mapping_of(shm.segment_name_prefix)) corrupt(base, layout);
      corrupted.count_down();
      done.wait();
    } else {
      corrupted.wait();
      victim(*group);
      done.count_down();
    }
    group->shutdown();
  });
}

// What `work` failed with: a CommError's message, or "" (and a test failure) when it did not.
std::string comm_error_of(const std::shared_ptr<Work>& work) {
  try {
    work->wait();
  } catch (const CommError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a CommError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "completed despite the corruption";
  return "";
}

TEST(ShmCorruption, ARingHeadBeyondItsCapacityFailsTheGroupNamingTheRankAndTheField) {
  corrupt_then_run(
      "head",
      [](std::byte* base, const Layout& layout) {
        shared(layout.ring(base, 0, 1)->head).store(layout.ring_bytes() + 1);
      },
      [](ProcessGroup& pg) {
        float x = 0;
        const std::string what = comm_error_of(pg.recv(&x, 1, DataType::kFloat32, 0, 7));
        EXPECT_TRUE(contains(what,
                             "the shared-memory ring from rank 0 to rank 1 is corrupt: its "
                             "head 131073 (written by rank 0)"))
            << what;
        // The group is unusable from then on, and says why.
        const std::string later = comm_error_of(pg.send(&x, 1, DataType::kFloat32, 0, 8));
        EXPECT_TRUE(contains(later, "head 131073")) << later;
      });
}

TEST(ShmCorruption, ARingTailBeyondItsHeadFailsTheSenderNamingTheRankAndTheField) {
  corrupt_then_run(
      "tail",
      [](std::byte* base, const Layout& layout) { shared(layout.ring(base, 1, 0)->tail).store(5); },
      [](ProcessGroup& pg) {
        float x = 1;
        const std::string what = comm_error_of(pg.send(&x, 1, DataType::kFloat32, 0, 7));
        EXPECT_TRUE(contains(what,
                             "the shared-memory ring from rank 1 to rank 0 is corrupt: its "
                             "tail 5 (written by rank 0) is beyond its head 0"))
            << what;
      });
}

TEST(ShmCorruption, AMessageLengthOfTwoToTheSixtiethFailsTheGroupAndAllocatesNothing) {
  corrupt_then_run(
      "length",
      [](std::byte* base, const Layout& layout) {
        const auto header =
            shm::encode_message_header({.tag = 9, .length = std::uint64_t{1} << 60});
        std::memcpy(layout.ring_data(base, 0, 1), header.data(), header.size());
        shared(layout.ring(base, 0, 1)->head).store(header.size());
      },
      [](ProcessGroup& pg) {
        // Another tag: the message would be kept for a later recv, in a buffer of its length.
        float x = 0;
        const std::string what = comm_error_of(pg.recv(&x, 1, DataType::kFloat32, 0, 7));
        EXPECT_TRUE(contains(what,
                             "a message header from rank 0 is corrupt: its length "
                             "1152921504606846976 exceeds"))
            << what;
      });
}

TEST(ShmCorruption, ABufferOffsetOutsideThePoolFailsTheAllreduceNamingTheRankAndTheField) {
  constexpr std::size_t kCount = 1024;
  corrupt_then_run(
      "offset",
      [](std::byte* base, const Layout& layout) {
        // Rank 0 appears to enter allreduce #1 on a pooled buffer that lies past its pool.
        shm::RankBlock* block = layout.rank(base, 0);
        shared(block->buffer_offset).store(layout.pool_bytes() - 4);
        const CallSignature call{.kind = OpKind::kAllreduce,
                                 .dtype = DataType::kFloat32,
                                 .op = ReduceOp::kSum,
                                 .count = kCount};
        const CallSignature::Wire wire = call.encode();
        std::memcpy(block->records[1].signature, wire.data(), wire.size());
        shared(block->records[1].seq).store(1);
        shared(block->progress).store(1);
      },
      [&](ProcessGroup& pg) {
        std::shared_ptr<std::byte[]> buffer = pg.allocate(kCount * sizeof(float));
        ASSERT_NE(buffer, nullptr);
        const std::string what = comm_error_of(pg.allreduce(
            reinterpret_cast<float*>(buffer.get()), kCount, DataType::kFloat32, ReduceOp::kSum));
        EXPECT_TRUE(contains(what,
                             "allreduce #1 on group world: the segment is corrupt: rank 0's "
                             "buffer_offset 268435452 does not hold the operation's 4096 "
                             "bytes"))
            << what;
      });
}

TEST(ShmCorruption, ARankStateThatIsNoStateIsNamed) {
  corrupt_then_run(
      "state",
      [](std::byte* base, const Layout& layout) { shared(layout.rank(base, 0)->state).store(77); },
      [](ProcessGroup& pg) {
        const std::string what = comm_error_of(pg.barrier());
        EXPECT_TRUE(contains(what,
                             "barrier #1 on group world: the segment is corrupt: rank 0's "
                             "state 77 is no rank state"))
            << what;
      });
}

TEST(ShmCorruption, AFailureReasonWithoutItsEndIsReadNoFurtherThanItsField) {
  corrupt_then_run(
      "reason",
      [](std::byte* base, const Layout& layout) {
        shm::RankBlock* block = layout.rank(base, 0);
        // The reason fills its field, and what follows it in the block is not a NUL either.
        auto* bytes = reinterpret_cast<char*>(block);
        const std::size_t at = offsetof(shm::RankBlock, reason);
        std::memset(bytes + at, 'x', shm::kReasonBytes);
        std::memset(bytes + at + shm::kReasonBytes, 'y',
                    sizeof(shm::RankBlock) - at - shm::kReasonBytes);
        shared(block->state).store(static_cast<std::uint32_t>(shm::RankState::kFailed));
      },
      [](ProcessGroup& pg) {
        const std::string what = comm_error_of(pg.barrier());
        EXPECT_TRUE(contains(what, "rank 0 failed: " + std::string(shm::kReasonBytes, 'x')))
            << what;
        EXPECT_FALSE(contains(what, "y")) << what;
      });
}

// A segment created under a name, with `mode`, as another process could have left it.
class ForeignSegment {
 public:
  ForeignSegment(const std::string& name, mode_t mode) : name_(name) {
    fd_ = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(::ftruncate(fd_, 4096), 0);
    EXPECT_EQ(::fchmod(fd_, mode), 0);  // past the umask
  }
  ForeignSegment(const ForeignSegment&) = delete;
  ForeignSegment& operator=(const ForeignSegment&) = delete;
  ~ForeignSegment() {
    ::close(fd_);
    ::shm_unlink(("/" + name_).c_str());
  }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  std::string name_;
  int fd_ = -1;
};

// Segment::open's refusal, or "" (and a test failure) when it mapped the segment.
std::string open_refusal(const std::string& name) {
  try {
    auto segment = shm::Segment::open(name, 4096, 0);
    ADD_FAILURE() << "mapped /dev/shm/" << name;
  } catch (const CommError& e) {
    return e.what();
  }
  return "";
}

TEST(ShmSegment, OpenRefusesASegmentThatOtherUsersCanReach) {
  const std::string name = unique_name("mode");
  ForeignSegment segment(name, 0644);
  const std::string what = open_refusal(name);
  EXPECT_TRUE(contains(what, "shared-memory segment /dev/shm/" + name + " is owned by uid " +
                                 std::to_string(::geteuid()) +
                                 " with mode 0644: open to other "
                                 "users"))
      << what;
}

TEST(ShmSegment, OpenRefusesASegmentOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root can give a segment to another uid";
  const std::string name = unique_name("owner");
  ForeignSegment segment(name, 0600);
  ASSERT_EQ(::fchown(segment.fd(), 65534, 65534), 0) << std::strerror(errno);
  const std::string what = open_refusal(name);
  EXPECT_TRUE(contains(what, "shared-memory segment /dev/shm/" + name +
                                 " is owned by uid 65534 with mode 0600: another user's"))
      << what;
}

TEST(ShmSegment, OpenMapsASegmentThatCreateMade) {
  const std::string name = unique_name("own");
  auto created = shm::Segment::create(name, 4096, 0);
  auto opened = shm::Segment::open(name, 4096, 0);
  shared(*reinterpret_cast<std::uint64_t*>(created->base())).store(42);
  EXPECT_EQ(shared(*reinterpret_cast<std::uint64_t*>(opened->base())).load(), 42u);
}

TEST(P2pWire, AHeaderReadsBackAsWritten) {
  const auto bytes = shm::encode_message_header({.tag = 7, .length = 123456789});
  const shm::MessageHeader header = shm::decode_message_header(bytes, 3);
  EXPECT_EQ(header.tag, 7u);
  EXPECT_EQ(header.length, 123456789u);
}

TEST(P2pWire, AHeaderNoSenderWroteIsRefusedNamingTheSender) {
  auto too_long = shm::encode_message_header({.tag = 1, .length = shm::kMaxMessageBytes + 1});
  EXPECT_THROW((void)shm::decode_message_header(too_long, 3), CommError);
  auto padded = shm::encode_message_header({.tag = 1, .length = 8});
  padded[5] = std::byte{1};
  try {
    (void)shm::decode_message_header(padded, 3);
    ADD_FAILURE() << "nonzero padding accepted";
  } catch (const CommError& e) {
    EXPECT_TRUE(contains(e.what(), "from rank 3 is corrupt: its padding holds 256")) << e.what();
  }
}

TEST(P2pWire, RingPositionsKeepTheTailWithinACapacityOfTheHead) {
  shm::check_ring({.head = 10, .tail = 10}, 64, 0, 1);
  shm::check_ring({.head = 74, .tail = 10}, 64, 0, 1);
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  shm::check_ring({.head = max, .tail = max - 64}, 64, 0, 1);
  EXPECT_THROW(shm::check_ring({.head = 75, .tail = 10}, 64, 0, 1), CommError);
  EXPECT_THROW(shm::check_ring({.head = 9, .tail = 10}, 64, 0, 1), CommError);
  EXPECT_THROW(shm::check_ring({.head = max, .tail = 0}, 64, 0, 1), CommError);
}

}  // namespace shm_corruption_test
}  // namespace tessera::comm
