#include "peer_process.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

namespace tessera::comm::shm {
namespace {

// include/linux/sched.h: "getting shut down", set as a task starts to exit.
constexpr unsigned long kExitingFlag = 0x00000004;

// The flags field of /proc/PID/stat; false when the file cannot be read or parsed.
bool read_flags(std::int32_t pid, unsigned long* flags) {
  char path[32];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char text[512];
  const std::size_t n = std::fread(text, 1, sizeof(text) - 1, f);
  std::fclose(f);
  text[n] = '\0';
  // "PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...": COMM may hold spaces and ')'.
  const char* end_of_comm = std::strrchr(text, ')');
  if (end_of_comm == nullptr) return false;
  std::istringstream fields(end_of_comm + 1);
  std::string skipped;
  for (int i = 0; i < 6; ++i) fields >> skipped;  // STATE .. TPGID
  return static_cast<bool>(fields >> *flags);
}

}  // namespace

bool peer_process_ended(std::int32_t pid) {
  if (pid <= 0 || pid == ::getpid()) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  unsigned long flags = 0;
  return read_flags(pid, &flags) && (flags & kExitingFlag) != 0;
}

}  // namespace tessera::comm::shm
