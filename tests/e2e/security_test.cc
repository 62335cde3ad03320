// Who can join a job: a process without the token cannot learn it from what other users can see
// (shared-memory names, command lines, output), cannot join, read or disturb the job, and cannot
// stop its rendezvous by holding the store's connections.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/tcp_store.h"

namespace tessera::e2e {
namespace security_test {

using namespace std::chrono_literals;

constexpr auto kJobTimeout = 60s;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string proc_file(pid_t pid, const std::string& name) {
  return read_file("/proc/" + std::to_string(pid) + "/" + name);
}

// The /dev/shm objects `pid` maps, as /proc/PID/maps names them.
std::vector<std::string> shared_memory_of(pid_t pid) {
  std::vector<std::string> names;
  std::istringstream maps(proc_file(pid, "maps"));
  for (std::string line; std::getline(maps, line);) {
    const auto at = line.find("/dev/shm/");
    if (at != std::string::npos) names.push_back(line.substr(at));
  }
  return names;
}

// A job whose workers wait for the file `go` before they join: what a test does before creating
// it happens before the rendezvous. `tessera launch` runs `tessera train` as its program.
std::vector<std::string> gated_job(const fs::path& go, const fs::path& config) {
  return {tessera_binary(), "launch", "--nproc", "2", "--backend", "shm", "--", "/bin/sh", "-c",
          // At most 30 s: no wait without a deadline, even in a test.
          "i=0; while [ ! -e \"$0\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
          "exec \"$1\" train \"$2\"",
          go.string(), tessera_binary(), config.string()};
}

int connect_to(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port =
      htons(static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  ::inet_pton(AF_INET, address.substr(0, address.rfind(':')).c_str(), &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

TEST(Security, TheTokenIsNowhereAnotherLocalUserCanRead) {
  TrainingJob job(test_name());
  // No token given: the launcher makes one up and hands it to the workers.
  Process launcher({tessera_binary(), "train", job.config(100000, 1000).string(), "--nproc", "2",
                    "--backend", "shm"},
                   {}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch 2/", kJobTimeout)) << launcher.err();
  const std::vector<pid_t> workers = worker_pids(launcher.err());
  ASSERT_EQ(workers.size(), 2u) << launcher.err();
  // What only the owner can read holds it (the test runs as the owner).
  const std::string token = environment_of(workers[0], "TESSERA_JOB_TOKEN");
  const std::string job_id = environment_of(workers[0], "TESSERA_JOB_ID");
  ASSERT_GE(token.size(), 16u);
  ASSERT_FALSE(job_id.empty());
  EXPECT_FALSE(contains(token, job_id)) << "the job id must not be a piece of the token";
  struct stat environ_stat {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(workers[0]) + "/environ").c_str(), &environ_stat), 0);
  EXPECT_EQ(environ_stat.st_mode & 0077, 0u) << "the kernel keeps a process's environment private";

  // What every local user can read does not.
  for (pid_t pid : {launcher.pid(), workers[0], workers[1]}) {
    EXPECT_FALSE(contains(proc_file(pid, "cmdline"), token)) << "pid " << pid;
  }
  for (pid_t pid : workers) {
    const std::vector<std::string> segments = shared_memory_of(pid);
    EXPECT_FALSE(segments.empty()) << "the shm backend maps a segment";
    for (const std::string& name : segments) {
      EXPECT_FALSE(contains(name, token)) << name;
      EXPECT_TRUE(contains(name, "/dev/shm/tessera-" + job_id + "-")) << name;
    }
  }
  for (const auto& entry : fs::directory_iterator("/dev/shm")) {
    EXPECT_FALSE(contains(entry.path().filename().string(), token)) << entry.path();
  }
  ASSERT_EQ(::kill(launcher.pid(), SIGTERM), 0);
  ASSERT_TRUE(launcher.wait(kJobTimeout).has_value()) << launcher.err();
  EXPECT_FALSE(contains(launcher.out() + launcher.err(), token));
}

TEST(Security, AProcessWithoutTheTokenCannotJoinReadOrDisturbAJob) {
  TrainingJob job(test_name());
  const std::string token = comm::make_job_token();
  const fs::path go = job.dir() / "go";
  const fs::path config = job.config(2, 5);
  Process launcher(gated_job(go, config), {"TESSERA_JOB_TOKEN=" + token}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("store at", kJobTimeout)) << launcher.err();
  const std::string address = store_address(launcher.err());
  const std::string host = address.substr(0, address.rfind(':'));
  const int port = std::stoi(address.substr(address.rfind(':') + 1));

  // A client of the store, with a wrong token or none.
  for (const std::string& guess : {std::string("a-guess-0123456789abcdef"), std::string()}) {
    try {
      comm::TcpStore stranger(comm::TcpStoreOptions{
          .host = host, .port = port, .token = guess, .connect_timeout = 5000ms});
      ADD_FAILURE() << "the store let in a client with token '" << guess << "'";
    } catch (const comm::CommError& e) {
      EXPECT_TRUE(contains(e.what(), "refused the connection: bad job token")) << e.what();
    }
  }
  // A rank of the job, with a wrong token: it cannot take a place in the job.
  Process intruder({tessera_binary(), "train", config.string()},
                   {"TESSERA_RANK=1", "TESSERA_WORLD_SIZE=2", "TESSERA_STORE_ADDR=" + address,
                    "TESSERA_JOB_TOKEN=a-guess-0123456789abcdef", "TESSERA_BACKEND=shm",
                    "TESSERA_COMM_TIMEOUT_S=10"},
                   job.dir() / "intruder");
  auto intruder_code = intruder.wait(kJobTimeout);
  ASSERT_TRUE(intruder_code.has_value()) << intruder.err();
  EXPECT_EQ(*intruder_code, 1) << intruder.err();
  EXPECT_TRUE(contains(intruder.err(), "refused the connection: bad job token")) << intruder.err();

  // The job goes on as if nothing happened.
  std::ofstream(go) << "go";
  auto code = launcher.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value()) << launcher.err();
  EXPECT_EQ(*code, 0) << launcher.err();
  EXPECT_EQ(count_lines_with(launcher.out(), "[rank 0] trained 10 steps"), 1) << launcher.out();
  EXPECT_TRUE(contains(launcher.err(), "refused a connection from 127.0.0.1:")) << launcher.err();
  EXPECT_FALSE(contains(launcher.out() + launcher.err(), token));
}

TEST(Security, FiveHundredIdleConnectionsDoNotStopAJobsRendezvous) {
  TrainingJob job(test_name());
  const fs::path go = job.dir() / "go";
  Process launcher(gated_job(go, job.config(2, 5)), {}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("store at", kJobTimeout)) << launcher.err();
  const std::string address = store_address(launcher.err());
  std::vector<int> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(connect_to(address));
  // The store holds only so many strangers' connections, closing the oldest: its descriptors stay
  // far below what was opened.
  ASSERT_TRUE(launcher.wait_for_output("it had not authenticated when a newer connection came",
                                       kJobTimeout))
      << launcher.err();
  const auto descriptors =
      std::distance(fs::directory_iterator("/proc/" + std::to_string(launcher.pid()) + "/fd"),
                    fs::directory_iterator());
  EXPECT_LT(descriptors, 250) << "the launcher holds a descriptor for every idle connection";
  // Only now may the workers meet.
  std::ofstream(go) << "go";
  auto code = launcher.wait(kJobTimeout);
  for (int fd : idle) ::close(fd);
  ASSERT_TRUE(code.has_value()) << "the job did not finish:\n" << launcher.err();
  EXPECT_EQ(*code, 0) << launcher.err();
  EXPECT_EQ(count_lines_with(launcher.out(), "[rank 0] trained 10 steps"), 1) << launcher.out();
}

TEST(Security, ATokenOnTheCommandLineOrInAFileOthersCanReadIsRefused) {
  TrainingJob job(test_name());
  const std::string config = job.config(1, 5).string();
  const fs::path token_file = job.dir() / "token";
  std::ofstream(token_file) << comm::make_job_token() << "\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
  struct Case {
    std::vector<std::string> flags;
    std::string expected;
  };
  const Case cases[] = {
      {{"--token", "e2e0123456789abcdef0123456789abc"},
       "--token: is not accepted: a token on the command line is readable by every user"},
      {{"--token-file", token_file.string()}, "has mode 0644: other users may read or change it"},
      {{"--token-file", (job.dir() / "missing").string()}, "cannot be opened"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args{tessera_binary(), "train", config, "--nproc", "2"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    Process launcher(args, {}, job.dir() / ("launcher" + std::to_string(i++)));
    auto code = launcher.wait(kJobTimeout);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 2) << launcher.err();
    EXPECT_TRUE(contains(launcher.err(), c.expected)) << launcher.err();
    EXPECT_FALSE(contains(launcher.err(), "started rank")) << "no worker may start";
  }
}

TEST(Security, ATokenFileOnlyItsOwnerCanReadStartsTheJob) {
  TrainingJob job(test_name());
  const std::string token = comm::make_job_token();
  const fs::path token_file = job.dir() / "token";
  std::ofstream(token_file) << token << "\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  Process launcher({tessera_binary(), "train", job.config(100000, 1000).string(), "--nproc", "2",
                    "--token-file", token_file.string()},
                   {}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch", kJobTimeout)) << launcher.err();
  const auto worker = worker_pid(launcher.err(), 1);
  ASSERT_TRUE(worker.has_value()) << launcher.err();
  EXPECT_EQ(environment_of(*worker, "TESSERA_JOB_TOKEN"), token) << "the file's line, newline off";
  EXPECT_FALSE(contains(proc_file(*worker, "cmdline"), "--token-file"))
      << "the launcher's options stay with the launcher";
  ASSERT_EQ(::kill(launcher.pid(), SIGTERM), 0);
  ASSERT_TRUE(launcher.wait(kJobTimeout).has_value()) << launcher.err();
}

}  // namespace security_test
}  // namespace tessera::e2e
