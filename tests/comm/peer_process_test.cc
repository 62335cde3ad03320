// peer_process_ended against real child processes: a live one, a stopped one (a hung rank is not
// a dead one), one killed and not yet reaped by its parent (kill(pid, 0) still succeeds on it),
// and one gone entirely.
#include "shm/peer_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace tessera::comm::shm {
namespace {

pid_t sleeping_child() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) ::pause();
  }
  return pid;
}

// Waits (within a second) until the child `pid` can be reaped, without reaping it.
bool wait_until_reapable(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

TEST(PeerProcess, ALiveOrStoppedProcessHasNotEnded) {
  const pid_t pid = sleeping_child();
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(peer_process_ended(pid));
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
  EXPECT_FALSE(peer_process_ended(pid));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

TEST(PeerProcess, AKilledProcessHasEndedBeforeItsParentReapsIt) {
  const pid_t pid = sleeping_child();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until_reapable(pid));
  EXPECT_EQ(::kill(pid, 0), 0) << "a zombie still answers kill(pid, 0)";
  EXPECT_TRUE(peer_process_ended(pid));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(peer_process_ended(pid));
}

TEST(PeerProcess, ThisProcessAndNoPidHaveNotEnded) {
  EXPECT_FALSE(peer_process_ended(::getpid()));
  EXPECT_FALSE(peer_process_ended(0));
  EXPECT_FALSE(peer_process_ended(-1));
}

}  // namespace
}  // namespace tessera::comm::shm
