// `tessera train --nproc N` and `tessera launch`: the launcher with real worker processes, on
// this host.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>

#include "process.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/tcp_store.h"

namespace tessera::e2e {
namespace launcher_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kJobTimeout = 30s;
// A token the test knows (the launcher generates one when none is given), passed as the user
// would: in the environment.
const std::string kToken = "e2e0123456789abcdef0123456789abc";
const std::string kTokenVariable = "TESSERA_JOB_TOKEN=" + kToken;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void expect_all_gone(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids)
    EXPECT_FALSE(pid_alive(pid)) << "worker pid " << pid << " outlived the launcher";
}

// Every backend a launcher's workers can use on one host.
const std::vector<std::string> kBackends{"gloo", "shm"};

class LauncherTest : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(LauncherTest, TrainsWithRankPrefixedOutputAndOneSetOfMetrics) {
  const auto& [nproc, backend] = GetParam();
  TrainingJob job(test_name() + std::to_string(nproc) + backend);
  // 240 samples, a global batch of 48 split over the ranks: 5 steps per epoch for any nproc.
  const int local = 48 / nproc;
  const int per_epoch = (240 / nproc + local - 1) / local;
  // Both spellings of an option; the workers' command line must have neither.
  std::vector<std::string> args{tessera_binary(), "train", job.config(2, per_epoch).string()};
  if (nproc == 2) {
    args.insert(args.end(), {"--nproc", "2", "--backend", backend});
  } else {
    args.insert(args.end(), {"--nproc=" + std::to_string(nproc), "--backend=" + backend});
  }
  Process launcher(args, {}, job.dir() / "launcher");
  auto code = launcher.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value()) << "launcher did not finish within 30 s:\n" << launcher.err();
  ASSERT_EQ(*code, 0) << launcher.err();
  const std::string out = launcher.out();
  const std::string err = launcher.err();
  // Only rank 0 reports; every line a worker printed carries its rank.
  EXPECT_EQ(count_lines_with(out, "[rank 0] trained " + std::to_string(2 * per_epoch) + " steps"),
            1)
      << out;
  EXPECT_EQ(count_lines_with(out, "trained"), 1) << out;
  EXPECT_GE(count_lines_with(err, "[rank 0] epoch 1/2"), 1) << err;
  for (int rank = 1; rank < nproc; ++rank) {
    EXPECT_EQ(count_lines_with(out + err, "[rank " + std::to_string(rank) + "]"), 0)
        << "rank " << rank << " printed progress:\n"
        << err;
  }
  EXPECT_EQ(worker_pids(err).size(), static_cast<std::size_t>(nproc)) << err;
  // Metrics written once: one line per logged step and per epoch (not one per rank), and the step
  // count is that of the global batch.
  const std::string metrics = read_file(job.metrics());
  EXPECT_EQ(count_lines_with(metrics, "\"samples_per_s\""), 2) << metrics;
  EXPECT_EQ(count_lines_with(metrics, "\"train_loss\""), 2) << metrics;
  EXPECT_NE(metrics.find("\"step\":" + std::to_string(2 * per_epoch)), std::string::npos)
      << metrics;
  EXPECT_TRUE(fs::exists(job.dir() / "run" / "checkpoints"));
  expect_all_gone(worker_pids(err));
}

INSTANTIATE_TEST_SUITE_P(RanksAndBackends, LauncherTest,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::ValuesIn(kBackends)),
                         [](const auto& info) {
                           return "Nproc" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param);
                         });

// A job that trains until stopped: 100000 epochs of 5-8 steps.
std::vector<std::string> endless_job(const TrainingJob& job, int nproc,
                                     const std::string& backend = "gloo") {
  return {tessera_binary(),
          "train",
          job.config(100000, 1000).string(),
          "--nproc",
          std::to_string(nproc),
          "--backend",
          backend};
}

class WorkerFailureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkerFailureTest, AKilledWorkerFailsTheOthersWithinTheTimeoutAndIsNamed) {
  TrainingJob job(test_name() + GetParam());
  auto args = endless_job(job, 3, GetParam());
  args.insert(args.end(), {"--grace", "20"});  // the others must fail on their own, not be killed
  Process launcher(args, {"TESSERA_COMM_TIMEOUT_S=3"}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch 2/", kJobTimeout)) << launcher.err();
  const auto pids = worker_pids(launcher.err());
  auto victim = worker_pid(launcher.err(), 1);
  ASSERT_TRUE(victim.has_value()) << launcher.err();
  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(*victim, SIGKILL), 0);
  auto code = launcher.wait(kJobTimeout);
  const double took = seconds_since(killed_at);
  const std::string err = launcher.err();
  ASSERT_TRUE(code.has_value()) << "hang: the launcher did not exit within 30 s\n" << err;
  EXPECT_EQ(*code, 128 + SIGKILL) << err;
  EXPECT_LT(took, 3.0 + 3.0) << "the others took longer than the 3 s timeout (+3 s slack)\n" << err;
  EXPECT_NE(
      err.find("rank 1 (pid " + std::to_string(*victim) + ") failed: it was killed by SIGKILL"),
      std::string::npos)
      << err;
  // The survivors failed by themselves (exit code 1, a comm error naming rank 1), not by the
  // launcher's SIGTERM.
  for (int rank : {0, 2}) {
    const std::string prefix = "[rank " + std::to_string(rank) + "] tessera: error: ";
    auto at = err.find(prefix);
    ASSERT_NE(at, std::string::npos) << err;
    const std::string line = err.substr(at, err.find('\n', at) - at);
    EXPECT_NE(line.find("rank 1"), std::string::npos) << line;
    EXPECT_NE(err.find("rank " + std::to_string(rank) + " exited with code 1"), std::string::npos)
        << err;
  }
  expect_all_gone(pids);
}

TEST_P(WorkerFailureTest, AStoppedWorkerMakesTheOthersTimeOutAndIsNamed) {
  TrainingJob job(test_name() + GetParam());
  auto args = endless_job(job, 3, GetParam());
  args.insert(args.end(), {"--grace", "20"});
  Process launcher(args, {"TESSERA_COMM_TIMEOUT_S=2"}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch 2/", kJobTimeout)) << launcher.err();
  const auto pids = worker_pids(launcher.err());
  auto victim = worker_pid(launcher.err(), 1);
  ASSERT_TRUE(victim.has_value()) << launcher.err();
  const auto stopped_at = Clock::now();
  ASSERT_EQ(::kill(*victim, SIGSTOP), 0);
  auto code = launcher.wait(kJobTimeout);
  const double took = seconds_since(stopped_at);
  const std::string err = launcher.err();
  ASSERT_TRUE(code.has_value()) << "hang: the launcher did not exit within 30 s\n" << err;
  EXPECT_EQ(*code, 1) << err;
  // Nothing can notice a stopped process before the timeout; after it, the others fail at once
  // and the launcher does not wait out its grace period for a process that cannot exit.
  EXPECT_GE(took, 2.0) << err;
  EXPECT_LT(took, 2.0 + 4.0) << err;
  for (int rank : {0, 2}) {
    const std::string prefix = "[rank " + std::to_string(rank) + "] tessera: error: ";
    auto at = err.find(prefix);
    ASSERT_NE(at, std::string::npos) << err;
    const std::string line = err.substr(at, err.find('\n', at) - at);
    EXPECT_NE(line.find("rank 1"), std::string::npos) << line;
    EXPECT_NE(line.find("timeout"), std::string::npos) << line;
  }
  EXPECT_NE(err.find("rank 1 was killed by SIGTERM from the launcher"), std::string::npos) << err;
  EXPECT_NE(err.find("had been stopped"), std::string::npos) << err;
  expect_all_gone(pids);
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkerFailureTest, ::testing::ValuesIn(kBackends),
                         [](const auto& info) { return info.param; });

TEST(Launcher, RefusesStoreClientsWithoutTheTokenAndStopsOnSigterm) {
  TrainingJob job(test_name());
  Process launcher(endless_job(job, 2), {kTokenVariable}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch", kJobTimeout)) << launcher.err();
  const std::string address = store_address(launcher.err());
  ASSERT_FALSE(address.empty()) << launcher.err();
  const std::string host = address.substr(0, address.rfind(':'));
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  EXPECT_EQ(host, "127.0.0.1") << "one host: the store listens on loopback";

  for (const std::string& token : {std::string("wrong-token-0123456789"), std::string()}) {
    try {
      comm::TcpStore store(
          comm::TcpStoreOptions{.host = host, .port = port, .token = token, .connect_timeout = 5s});
      ADD_FAILURE() << "the launcher's store accepted token '" << token << "'";
    } catch (const comm::CommError& e) {
      EXPECT_NE(std::string(e.what()).find("bad job token"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(launcher.wait_for_output("refused a connection", 5s)) << launcher.err();
  comm::TcpStore good(
      comm::TcpStoreOptions{.host = host, .port = port, .token = kToken, .connect_timeout = 5s});
  good.set("e2e/probe", "ok");
  EXPECT_EQ(good.get("e2e/probe", 5s), "ok");

  // Shared memory a crashed worker could leave behind is removed when the launcher exits.
  const auto pid = worker_pid(launcher.err(), 0);
  ASSERT_TRUE(pid.has_value()) << launcher.err();
  const std::string job_id = environment_of(*pid, "TESSERA_JOB_ID");
  ASSERT_EQ(job_id.size(), 16u) << "the launcher passes each worker a job id";
  const fs::path leftover = "/dev/shm/tessera-" + job_id + "-e2e-leftover";
  std::ofstream(leftover) << "x";
  ASSERT_TRUE(fs::exists(leftover));

  const auto pids = worker_pids(launcher.err());
  ASSERT_EQ(::kill(launcher.pid(), SIGTERM), 0);
  auto code = launcher.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value()) << launcher.err();
  EXPECT_EQ(*code, 128 + SIGTERM) << launcher.err();
  EXPECT_NE(launcher.err().find("interrupted by SIGTERM"), std::string::npos) << launcher.err();
  EXPECT_FALSE(fs::exists(leftover));
  expect_all_gone(pids);
}

// tessera's own workers allocate on huge pages unless the user set glibc's tunables; a program
// that `tessera launch` runs gets the environment as it is.
TEST(Launcher, OwnWorkersGetHugePagesUnlessTheUserSetGlibcTunables) {
  for (const std::string users : {"", "glibc.malloc.arena_max=2"}) {
    TrainingJob job(test_name() + std::to_string(users.size()));
    std::vector<std::string> env{kTokenVariable};
    if (!users.empty()) env.push_back("GLIBC_TUNABLES=" + users);
    Process launcher(endless_job(job, 2), env, job.dir() / "launcher");
    ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch", kJobTimeout)) << launcher.err();
    for (const pid_t pid : worker_pids(launcher.err())) {
      EXPECT_EQ(environment_of(pid, "GLIBC_TUNABLES"),
                users.empty() ? "glibc.malloc.hugetlb=1" : users);
    }
    ASSERT_EQ(::kill(launcher.pid(), SIGTERM), 0);
    EXPECT_TRUE(launcher.wait(kJobTimeout).has_value());
  }
  const fs::path dir = fs::temp_directory_path() / ("tessera-e2e-" + test_name());
  fs::create_directories(dir);
  Process launch({tessera_binary(), "launch", "--nproc", "1", "sh", "-c",
                  "echo \"tunables [$GLIBC_TUNABLES]\""},
                 {}, dir / "launch");
  ASSERT_EQ(launch.wait(kJobTimeout), 0) << launch.err();
  EXPECT_NE(launch.out().find("tunables []"), std::string::npos) << launch.out();
  fs::remove_all(dir);
}

TEST(Launcher, RefusesSeveralProcessesWithoutAParallelStrategy) {
  TrainingJob job(test_name());
  Process launcher(
      {tessera_binary(), "train", job.config(1, 5, "job", "none").string(), "--nproc", "2"}, {},
      job.dir() / "launcher");
  auto code = launcher.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2) << launcher.err();
  EXPECT_NE(launcher.err().find("parallel.strategy"), std::string::npos) << launcher.err();
  EXPECT_EQ(launcher.err().find("started rank"), std::string::npos) << "no worker may start";
}

TEST(Launcher, SeveralNodesNeedAReachableRendezvousAndAToken) {
  TrainingJob job(test_name());
  const std::string config = job.config(1, 5).string();
  struct Case {
    std::vector<std::string> flags;
    std::vector<std::string> env;
    std::string expected;
  };
  const Case cases[] = {
      {{"--nnodes", "2", "--node-rank", "0"}, {kTokenVariable}, "--rdzv: is required"},
      {{"--nnodes", "2", "--node-rank", "0", "--rdzv", "127.0.0.1:29999"},
       {kTokenVariable},
       "loopback"},
      {{"--nnodes", "2", "--node-rank", "0", "--rdzv", "10.0.0.1:29999"},
       {},
       "job token: is required"},
      {{"--nnodes", "2", "--node-rank", "2", "--rdzv", "10.0.0.1:29999"},
       {kTokenVariable},
       "--node-rank"},
      {{"--nproc", "2"}, {"TESSERA_JOB_TOKEN=short"}, "at least 16 characters"},
      {{"--nproc", "2", "--backend", "mpi"}, {}, "mpirun"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args{tessera_binary(), "train", config};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    Process launcher(args, c.env, job.dir() / ("launcher" + std::to_string(i++)));
    auto code = launcher.wait(kJobTimeout);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 2) << launcher.err();
    EXPECT_NE(launcher.err().find(c.expected), std::string::npos)
        << "expected \"" << c.expected << "\" in:\n"
        << launcher.err();
  }
}

TEST(Launch, RunsAnyProgramAsTheRanksWithItsOwnOptions) {
  const fs::path dir = fs::temp_directory_path() / ("tessera-e2e-" + test_name());
  fs::create_directories(dir);
  // The program's own options (--nproc among them) are its own, before and after "--".
  const std::string script =
      "echo \"job $TESSERA_RANK/$TESSERA_WORLD_SIZE local $TESSERA_LOCAL_RANK backend "
      "$TESSERA_BACKEND args $*\"; test -n \"$TESSERA_STORE_ADDR\" && test -n "
      "\"$TESSERA_JOB_TOKEN\"";
  for (bool dashes : {false, true}) {
    std::vector<std::string> args{tessera_binary(), "launch", "--nproc", "3", "--backend", "shm"};
    if (dashes) args.push_back("--");
    args.insert(args.end(), {"sh", "-c", script, "sh", "--nproc", "7"});
    Process launcher(args, {}, dir / (dashes ? "dashes" : "plain"));
    auto code = launcher.wait(kJobTimeout);
    ASSERT_TRUE(code.has_value());
    ASSERT_EQ(*code, 0) << launcher.err();
    for (int rank = 0; rank < 3; ++rank) {
      const std::string r = std::to_string(rank);
      EXPECT_EQ(count_lines_with(launcher.out(), "[rank " + r + "] job " + r + "/3 local " + r +
                                                     " backend shm args --nproc 7"),
                1)
          << launcher.out();
    }
  }
  fs::remove_all(dir);
}

TEST(Launch, NamesAMissingProgramAndPassesOnAFailedRanksCode) {
  const fs::path dir = fs::temp_directory_path() / ("tessera-e2e-" + test_name());
  fs::create_directories(dir);
  Process missing({tessera_binary(), "launch", "--nproc", "2", "no-such-program-here"}, {},
                  dir / "missing");
  auto code = missing.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2) << missing.err();
  EXPECT_NE(missing.err().find("\"no-such-program-here\" was not found on PATH"), std::string::npos)
      << missing.err();
  EXPECT_EQ(missing.err().find("started rank"), std::string::npos) << "no worker may start";

  Process failing({tessera_binary(), "launch", "--nproc", "2", "--grace", "1", "sh", "-c",
                   "echo last words; exit $((TESSERA_RANK * 3))"},
                  {}, dir / "failing");
  code = failing.wait(kJobTimeout);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 3) << failing.err();
  EXPECT_NE(failing.err().find("rank 1 (pid"), std::string::npos) << failing.err();
  EXPECT_NE(failing.err().find("exited with code 3; its last line: \"last words\""),
            std::string::npos)
      << failing.err();
  fs::remove_all(dir);
}

}  // namespace launcher_test
}  // namespace tessera::e2e
