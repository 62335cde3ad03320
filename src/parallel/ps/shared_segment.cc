#include "shared_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "tessera/comm/errors.h"
#include "tessera/comm/socket.h"
#include "tessera/comm/token_auth.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {
namespace {

std::byte* map(int fd, uint64_t bytes, bool writable) {
  void* p =
      ::mmap(nullptr, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

}  // namespace

SharedSegment::SharedSegment(SharedSegment&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      info_(other.info_) {}

SharedSegment& SharedSegment::operator=(SharedSegment&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    info_ = other.info_;
  }
  return *this;
}

SharedSegment::~SharedSegment() { release(); }

void SharedSegment::release() noexcept {
  if (base_ != nullptr) ::munmap(base_, kSegmentHeaderBytes + info_.bytes);
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

SharedSegment SharedSegment::create(uint64_t bytes) {
  const auto fail = [&](const char* what) {
    return comm::CommError(detail::concat("ps server: cannot make a shared segment of ", bytes,
                                          " bytes: ", what, ": ", comm::errno_message(errno)));
  };
  const uint64_t total = kSegmentHeaderBytes + bytes;
  SharedSegment segment;
  segment.fd_ = ::memfd_create("tessera-ps", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (segment.fd_ < 0) throw fail("memfd_create");
  if (::ftruncate(segment.fd_, static_cast<off_t>(total)) != 0) throw fail("ftruncate");
  if (::fcntl(segment.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    throw fail("sealing it");
  }
  segment.base_ = map(segment.fd_, total, true);
  if (segment.base_ == nullptr) throw fail("mmap");
  const std::string nonce = comm::random_nonce();
  segment.info_ = {.pid = static_cast<uint32_t>(::getpid()), .fd = segment.fd_, .bytes = bytes};
  std::memcpy(segment.info_.nonce.data(), nonce.data(), kSegmentNonceBytes);
  std::memcpy(segment.base_, nonce.data(), kSegmentNonceBytes);
  return segment;
}

std::optional<SharedSegment> SharedSegment::open(const SegmentInfo& info, bool writable) {
  const std::string path = detail::concat("/proc/", info.pid, "/fd/", info.fd);
  const uint64_t total = kSegmentHeaderBytes + info.bytes;
  SharedSegment segment;
  segment.fd_ = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (segment.fd_ < 0) return std::nullopt;
  struct stat st {};
  if (::fstat(segment.fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != total ||
      (::fcntl(segment.fd_, F_GET_SEALS) & F_SEAL_SHRINK) == 0) {
    return std::nullopt;
  }
  segment.base_ = map(segment.fd_, total, writable);
  if (segment.base_ == nullptr) return std::nullopt;
  segment.info_ = info;
  if (std::memcmp(segment.base_, info.nonce.data(), kSegmentNonceBytes) != 0) return std::nullopt;
  return segment;
}

}  // namespace tessera::parallel::ps
