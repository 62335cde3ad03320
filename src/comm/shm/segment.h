#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// The shared-memory segment of a ShmGroup: its layout, its mapping, and the futex calls ranks
// sleep on. Every shared word is accessed through std::atomic_ref (plain integers in the mapped
// memory: no object needs constructing in memory another process created).
namespace tessera::comm::shm {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint64_t kSegmentMagic = 0x31617265'73736574ULL;  // "tessera1"
inline constexpr std::uint32_t kSegmentVersion = 2;
// Longest failure message a rank leaves in the segment for the others.
inline constexpr std::size_t kReasonBytes = 384;
// Slots per rank: a collective's chunk k goes through slot k % 3, so a rank fills the slot of
// chunk k + 1 while the others still read chunk k's, and every step needs only one wait.
inline constexpr int kSlotsPerRank = 3;
// Collective records each rank keeps (see RankBlock::records): more than a rank can run ahead
// of another that has not compared signatures yet (a root that waits only for its slots runs
// at most kSlotsPerRank collectives ahead).
inline constexpr int kOpRecords = 8;
// Bytes of each point-to-point ring (one per ordered pair of ranks): 128 KiB for a few ranks,
// less for many (all rings together at most kRingBudget of address space; only pages a send
// writes take memory), never below 16 KiB. A power of two.
inline constexpr std::size_t kMaxRingBytes = std::size_t{128} << 10;
inline constexpr std::size_t kMinRingBytes = std::size_t{16} << 10;
inline constexpr std::size_t kRingBudget = std::size_t{64} << 20;
[[nodiscard]] std::size_t ring_bytes_for(int size);

// What a rank is doing, as the others see it.
enum class RankState : std::uint32_t {
  kJoining = 0,  // has not mapped the segment yet
  kRunning = 1,
  kFailed = 2,    // an operation failed here; `reason` says why
  kTimedOut = 3,  // an operation timed out here; `reason` says why
  kClosed = 4,    // shut its group down
  kMismatch = 5,  // found ranks issuing different collectives; `reason` says which
};

struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::int32_t size;
  std::uint64_t slot_bytes;
  std::uint64_t ring_bytes;
  std::uint64_t pool_bytes;
  std::uint64_t total_bytes;
  // Ranks sleeping in futex_wait on some rank's progress word: publishers wake only when > 0.
  alignas(kCacheLine) std::uint32_t sleepers;
};

// A collective as one rank issued it: its sequence number and CallSignature::encode().
struct OpRecord {
  std::uint64_t seq;  // 0: none yet
  std::byte signature[24];
};

// One per rank; each field group on its own cache line, so a rank's progress stores do not
// invalidate what the others read for diagnosis.
struct RankBlock {
  // Steps this rank has finished in the group's sequence of collective steps. Its low 32 bits
  // are the futex word others sleep on.
  alignas(kCacheLine) std::uint64_t progress;
  // Bumped whenever a point-to-point ring to or from this rank changes; its p2p thread sleeps on
  // it. `p2p_parked` says whether it sleeps.
  alignas(kCacheLine) std::uint32_t doorbell;
  std::uint32_t p2p_parked;
  alignas(kCacheLine) std::uint32_t state;  // RankState
  std::int32_t pid;
  std::uint64_t completed;  // sequence number of the last collective completed here
  // Where this rank's buffer of the current allreduce lies in its pool (kNotPooled: elsewhere);
  // written before the collective's first step, read by the others after it.
  alignas(kCacheLine) std::uint64_t buffer_offset;
  // The latest collectives entered, at index seq % kOpRecords. Written as a seqlock (seq set to
  // 0 while the signature changes): a rank that runs ahead (a broadcast root waits only for its
  // slots) may overwrite a record while another rank reads it, and the reader then sees it.
  OpRecord records[kOpRecords];
  // Written before state becomes kFailed/kTimedOut; NUL-terminated when its writer is sane, so
  // read with a bound.
  char reason[kReasonBytes];
};

inline constexpr std::uint64_t kNotPooled = ~std::uint64_t{0};

// A single-producer single-consumer byte ring from one rank to another. `head` and `tail` count
// bytes written and consumed since the start.
struct RingHeader {
  alignas(kCacheLine) std::uint64_t head;
  alignas(kCacheLine) std::uint64_t tail;
};

// Where everything lies in a segment for `size` ranks.
class Layout {
 public:
  // `pool_bytes`: each rank's pool of buffers that every rank can reach (rounded up to pages).
  Layout(int size, std::size_t slot_bytes, std::size_t pool_bytes);

  [[nodiscard]] std::size_t total_bytes() const { return total_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] std::size_t slot_bytes() const { return slot_bytes_; }
  [[nodiscard]] std::size_t ring_bytes() const { return ring_bytes_; }
  [[nodiscard]] std::size_t pool_bytes() const { return pool_bytes_; }
  // Bytes before the rings: header, control blocks and slots, which every collective touches.
  [[nodiscard]] std::size_t hot_bytes() const { return rings_offset_; }

  [[nodiscard]] SegmentHeader* header(std::byte* base) const {
    return reinterpret_cast<SegmentHeader*>(base);
  }
  [[nodiscard]] RankBlock* rank(std::byte* base, int r) const {
    return reinterpret_cast<RankBlock*>(base + ranks_offset_) + r;
  }
  // Slot `index` (< kSlotsPerRank) of rank r: slot_bytes() bytes.
  [[nodiscard]] std::byte* slot(std::byte* base, int r, int index) const {
    return base + slots_offset_ +
           (static_cast<std::size_t>(r) * kSlotsPerRank + static_cast<std::size_t>(index)) *
               slot_bytes_;
  }
  // Rank r's pool: pool_bytes() bytes, starting on a page, at pool_offset(r) in the segment.
  [[nodiscard]] std::size_t pool_offset(int r) const {
    return pools_offset_ + static_cast<std::size_t>(r) * pool_bytes_;
  }
  [[nodiscard]] RingHeader* ring(std::byte* base, int src, int dst) const {
    return reinterpret_cast<RingHeader*>(base + rings_offset_ +
                                         ring_index(src, dst) * ring_stride_);
  }
  [[nodiscard]] std::byte* ring_data(std::byte* base, int src, int dst) const {
    return base + rings_offset_ + ring_index(src, dst) * ring_stride_ + sizeof(RingHeader);
  }

 private:
  [[nodiscard]] std::size_t ring_index(int src, int dst) const {
    return static_cast<std::size_t>(src) * static_cast<std::size_t>(size_) +
           static_cast<std::size_t>(dst);
  }

  int size_;
  std::size_t slot_bytes_;
  std::size_t ring_bytes_;
  std::size_t pool_bytes_;
  std::size_t ranks_offset_;
  std::size_t slots_offset_;
  std::size_t rings_offset_;
  std::size_t ring_stride_;
  std::size_t pools_offset_;
  std::size_t total_;
};

// A mapping of a POSIX shared-memory object. Not thread-safe; the mapped memory is shared.
class Segment {
 public:
  // Creates /dev/shm/<name> (exclusively, mode 0600) of `bytes` bytes and maps it, faulting in
  // its first `populate` bytes at once. Throws CommError naming the segment and the system's
  // error.
  static std::unique_ptr<Segment> create(const std::string& name, std::size_t bytes,
                                         std::size_t populate);
  // Opens and maps an existing segment of exactly `bytes` bytes, owned by this effective uid and
  // granting nothing to group or others (as create() makes them); throws CommError naming the
  // segment, its owner and its mode otherwise, without mapping it.
  static std::unique_ptr<Segment> open(const std::string& name, std::size_t bytes,
                                       std::size_t populate);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  // Unmaps; removes the name if this mapping created it and unlink() was not called.
  ~Segment();

  // Removes the name from /dev/shm (the memory stays mapped). Idempotent; never throws.
  void unlink() noexcept;
  // Backs [offset, offset + bytes) with memory now (fallocate): false when /dev/shm has no room.
  // Touching a page of a full /dev/shm would kill the process with SIGBUS instead.
  [[nodiscard]] bool reserve(std::size_t offset, std::size_t bytes) noexcept;

  [[nodiscard]] std::byte* base() const { return base_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  Segment(std::string name, int fd, std::byte* base, std::size_t bytes, bool owns_name);

  std::string name_;
  int fd_;  // kept open for reserve()
  std::byte* base_;
  std::size_t bytes_;
  bool owns_name_;
};

template <typename T>
[[nodiscard]] std::atomic_ref<T> shared(T& value) {
  return std::atomic_ref<T>(value);
}

// Sleeps while the 32-bit word at `word` equals `expected`, at most `timeout` (futex, shared
// between processes). Returns early on a wake, a signal, or a changed value.
void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::microseconds timeout);
// Wakes every thread sleeping on `word`.
void futex_wake_all(std::uint32_t* word);

// The low 32 bits of a 64-bit counter, as the futex word (little-endian: same address).
[[nodiscard]] inline std::uint32_t* low_word(std::uint64_t* counter) {
  static_assert(std::endian::native == std::endian::little);
  return reinterpret_cast<std::uint32_t*>(counter);
}

// A pause instruction for spin loops.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace tessera::comm::shm
