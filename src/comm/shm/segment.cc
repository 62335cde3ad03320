#include "segment.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::shm {
namespace {

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::string system_error(int error) { return std::strerror(error); }

// shm_open's names are "/<name>"; ours are documented without the slash.
std::string object_name(const std::string& name) { return "/" + name; }

// Maps `bytes` of the object and faults in the first `populate` of them now (the control blocks
// and slots every collective touches), not during the first collectives. The rings stay unfaulted
// until a send uses them: /dev/shm holds only the pages written.
std::byte* map(int fd, const std::string& name, std::size_t bytes, std::size_t populate) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int error = errno;
    throw CommError(detail::concat("shared-memory segment /dev/shm/", name, ": mmap of ", bytes,
                                   " bytes failed: ", system_error(error)));
  }
  if (populate > 0 && ::mmap(p, populate, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0) == MAP_FAILED) {
    const int error = errno;
    ::munmap(p, bytes);
    throw CommError(detail::concat("shared-memory segment /dev/shm/", name, ": mapping its first ",
                                   populate, " bytes failed: ", system_error(error)));
  }
  return static_cast<std::byte*>(p);
}

// Why a segment found under our name cannot be ours (empty when it can): another user could
// have made it, or could read or write it.
std::string untrusted(const struct stat& st) {
  if (st.st_uid != ::geteuid()) return "another user's";
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) return "open to other users";
  return "";
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "0%03o", static_cast<unsigned>(mode & 0777));
  return text;
}

}  // namespace

std::size_t ring_bytes_for(int size) {
  const auto pairs = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
  const std::size_t bytes =
      std::clamp(kRingBudget / std::max<std::size_t>(pairs, 1), kMinRingBytes, kMaxRingBytes);
  return std::bit_floor(bytes);
}

Layout::Layout(int size, std::size_t slot_bytes, std::size_t pool_bytes)
    : size_(size),
      slot_bytes_(slot_bytes),
      ring_bytes_(ring_bytes_for(size)),
      pool_bytes_(round_up(pool_bytes, 4096)) {
  const auto n = static_cast<std::size_t>(size);
  ranks_offset_ = round_up(sizeof(SegmentHeader), kCacheLine);
  // Slots start on a page: copies into them never share a page with the control words.
  slots_offset_ = round_up(ranks_offset_ + n * sizeof(RankBlock), 4096);
  rings_offset_ = slots_offset_ + kSlotsPerRank * n * slot_bytes_;
  ring_stride_ = round_up(sizeof(RingHeader) + ring_bytes_, 4096);
  pools_offset_ = rings_offset_ + n * n * ring_stride_;
  total_ = pools_offset_ + n * pool_bytes_;
}

std::unique_ptr<Segment> Segment::create(const std::string& name, std::size_t bytes,
                                         std::size_t populate) {
  const int fd = ::shm_open(object_name(name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    const int error = errno;
    throw CommError(detail::concat("cannot create shared-memory segment /dev/shm/", name, ": ",
                                   system_error(error)));
  }
  std::byte* base = nullptr;
  try {
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int error = errno;
      throw CommError(detail::concat("shared-memory segment /dev/shm/", name,
                                     ": cannot size it to ", bytes, " bytes: ", system_error(error),
                                     " (is /dev/shm large enough?)"));
    }
    base = map(fd, name, bytes, populate);
  } catch (...) {
    ::close(fd);
    ::shm_unlink(object_name(name).c_str());
    throw;
  }
  return std::unique_ptr<Segment>(new Segment(name, fd, base, bytes, /*owns_name=*/true));
}

std::unique_ptr<Segment> Segment::open(const std::string& name, std::size_t bytes,
                                       std::size_t populate) {
  const int fd = ::shm_open(object_name(name).c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int error = errno;
    throw CommError(detail::concat(
        "cannot open shared-memory segment /dev/shm/", name, ": ", system_error(error),
        error == ENOENT ? " (its creator removed it: did it fail?)" : ""));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw CommError(detail::concat("shared-memory segment /dev/shm/", name,
                                   ": fstat failed: ", system_error(error)));
  }
  if (const std::string why = untrusted(st); !why.empty()) {
    ::close(fd);
    throw CommError(detail::concat("shared-memory segment /dev/shm/", name, " is owned by uid ",
                                   st.st_uid, " with mode ", mode_text(st.st_mode), ": ", why,
                                   "; it is not this job's (ours are owned by uid ", ::geteuid(),
                                   " with mode 0600), so it is not mapped"));
  }
  if (static_cast<std::size_t>(st.st_size) != bytes) {
    const auto actual = static_cast<long long>(st.st_size);
    ::close(fd);
    throw CommError(detail::concat("shared-memory segment /dev/shm/", name, " holds ", actual,
                                   " bytes, expected ", bytes,
                                   ": the ranks disagree on the group size, slot size or pool "
                                   "size"));
  }
  std::byte* base = nullptr;
  try {
    base = map(fd, name, bytes, populate);
  } catch (...) {
    ::close(fd);
    throw;
  }
  return std::unique_ptr<Segment>(new Segment(name, fd, base, bytes, /*owns_name=*/false));
}

Segment::Segment(std::string name, int fd, std::byte* base, std::size_t bytes, bool owns_name)
    : name_(std::move(name)), fd_(fd), base_(base), bytes_(bytes), owns_name_(owns_name) {}

Segment::~Segment() {
  unlink();
  ::munmap(base_, bytes_);
  ::close(fd_);
}

bool Segment::reserve(std::size_t offset, std::size_t bytes) noexcept {
  if (::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(bytes)) != 0) return false;
  // Faulted in now, in one call, not page by page at first use (a new group's first collectives:
  // an elastic job's resume waits on them). Kernels before 5.14 refuse it and fault as before.
  ::madvise(base_ + offset, bytes, MADV_POPULATE_WRITE);
  return true;
}

void Segment::unlink() noexcept {
  if (!owns_name_) return;
  owns_name_ = false;
  ::shm_unlink(object_name(name_).c_str());
}

void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::microseconds timeout) {
  const auto us = timeout.count() > 0 ? timeout.count() : 1;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(us / 1000000);
  ts.tv_nsec = static_cast<long>(us % 1000000) * 1000;
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::uint32_t* word) {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace tessera::comm::shm
