#include "tessera/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tessera/core/error.h"

namespace tessera {
namespace {

std::string errno_text() { return std::strerror(errno); }

void write_fully(int fd, const std::string& bytes, const std::string& path,
                 const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(what + ": cannot write " + path + ": " + errno_text());
    }
    done += static_cast<size_t>(n);
  }
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems do not allow it
  ::fsync(fd);
  ::close(fd);
}

// Makes `tmp` durable and puts it in place of `path`.
void commit(const std::string& tmp, const std::string& path, const std::string& what) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = errno_text();
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(what + ": fsync of " + tmp + " failed: " + why);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw Error(what + ": cannot rename " + tmp + " to " + path + ": " + why);
  }
  const std::filesystem::path target(path);
  fsync_dir(target.parent_path().empty() ? "." : target.parent_path().string());
}

std::string temporary_of(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes,
                           const std::string& what) {
  const std::string tmp = temporary_of(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(what + ": cannot create " + tmp + ": " + errno_text());
  try {
    write_fully(fd, bytes, tmp, what);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  commit(tmp, path, what);
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write,
                           const std::string& what) {
  const std::string tmp = temporary_of(path);
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(what + ": cannot create " + tmp + ": " + errno_text());
  try {
    write(out);
    out.close();
    if (!out) throw Error(what + ": cannot write " + tmp + ": " + errno_text());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  commit(tmp, path, what);
}

}  // namespace tessera
