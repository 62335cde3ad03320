// [parallel] strategy = "ps" through the real binary: the launcher starts servers and workers as
// separate processes, and a server faces strangers and garbage while it serves a job.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "process.h"
#include "tessera/comm/socket.h"

namespace tessera::e2e {
namespace ps_test {

using namespace std::chrono_literals;

constexpr auto kJobTimeout = 60s;

std::vector<std::string> ps_job(const TrainingJob& job, int epochs, int nproc, int servers,
                                const std::string& consistency) {
  return {tessera_binary(),
          "train",
          job.config(epochs, 5, "job", "ps").string(),
          "--nproc",
          std::to_string(nproc),
          "--set",
          "parallel.servers=" + std::to_string(servers),
          "--set",
          "parallel.consistency=\"" + consistency + "\""};
}

TEST(PsJob, TwoServersAndTwoWorkersTrainAsSeparateProcesses) {
  for (const std::string mode : {"bsp", "asp", "ssp"}) {
    TrainingJob job(test_name() + mode);
    Process launcher(ps_job(job, 3, 4, 2, mode), {}, job.dir() / "launcher");
    const auto code = launcher.wait(kJobTimeout);
    ASSERT_EQ(code, 0) << launcher.out() << launcher.err();
    const std::string err = launcher.err();
    EXPECT_NE(launcher.out().find("[rank 0] trained 15 steps"), std::string::npos)
        << mode << ": 240 samples, global batch 48, 3 epochs\n"
        << launcher.out();
    for (const char* line : {"[rank 2] ps server 0 of 2 at 127.0.0.1:", "[rank 3] ps server 1 of 2",
                             "[rank 2] ps server 0: done (", "[rank 3] ps server 1: done ("}) {
      EXPECT_NE(err.find(line), std::string::npos) << mode << ": " << line << "\n" << err;
    }
    EXPECT_TRUE(fs::exists(job.metrics())) << mode;
  }
}

// The address in "ps server 0 of N at HOST:PORT:".
std::pair<std::string, int> server_address(const std::string& err) {
  const std::string marker = "ps server 0 of ";
  const auto at = err.find(" at ", err.find(marker));
  const auto end = err.find(':', err.find(':', at + 4) + 1);
  const std::string address = err.substr(at + 4, end - at - 4);
  const auto colon = address.rfind(':');
  return {address.substr(0, colon), std::stoi(address.substr(colon + 1))};
}

// A stranger's hello, a wrong token and bytes that are no message at all: the server refuses or
// drops each, says so, and the job trains on.
TEST(PsJob, AServerRefusesStrangersAndGarbageAndKeepsServing) {
  TrainingJob job(test_name());
  Process launcher(ps_job(job, 100000, 2, 1, "asp"), {}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch 2/", kJobTimeout)) << launcher.err();
  const auto [host, port] = server_address(launcher.err());
  const auto deadline = comm::Clock::now() + 5s;
  std::string error;
  {
    // Not even the protocol: 40 bytes of text where the hello should be.
    comm::Socket s = comm::connect_tcp(host, port, deadline, &error);
    ASSERT_TRUE(s.valid()) << error;
    const std::string junk(40, 'z');
    ASSERT_EQ(comm::send_all(s.fd(), junk.data(), junk.size(), deadline, &error),
              comm::IoStatus::kOk);
    char byte;
    // The challenge arrives first; then the server closes the connection.
    while (comm::recv_all(s.fd(), &byte, 1, deadline, &error) == comm::IoStatus::kOk) {
    }
  }
  {
    // A truncated hello: a valid header announcing 64 bytes, then 3 bytes and silence.
    comm::Socket s = comm::connect_tcp(host, port, deadline, &error);
    ASSERT_TRUE(s.valid()) << error;
    unsigned char head[40] = {'T', 'S', 'P', 'S', 1, 0, 2, 0};
    head[32] = 64;
    ASSERT_EQ(comm::send_all(s.fd(), head, sizeof(head), deadline, &error), comm::IoStatus::kOk);
    ASSERT_EQ(comm::send_all(s.fd(), "abc", 3, deadline, &error), comm::IoStatus::kOk);
  }
  EXPECT_TRUE(launcher.wait_for_output("refused a connection", 15s)) << launcher.err();
  const auto epoch = launcher.err().rfind("epoch ");
  const std::string later =
      "[rank 0] epoch " + std::to_string(std::stoi(launcher.err().substr(epoch + 6)) + 2) + "/";
  EXPECT_TRUE(launcher.wait_for_output(later, kJobTimeout)) << "the job trains on\n"
                                                            << launcher.err();
  ASSERT_EQ(::kill(launcher.pid(), SIGTERM), 0);
  EXPECT_TRUE(launcher.wait(kJobTimeout).has_value());
}

// Under asp and ssp a worker killed mid-training costs only its own share: the servers declare it
// lost, ssp stops waiting for it, the launcher lets the others finish, and the job exits 0.
TEST(PsJob, AsynchronousJobsFinishWithoutAWorkerKilledAtARandomStep) {
  std::mt19937 random(11);
  for (const std::string mode : {"asp", "ssp"}) {
    TrainingJob job(test_name() + mode);
    // 3 workers and 1 server; 240 samples in global batches of 48: 5 steps per epoch.
    // It kills itself at a step of its own: under asp a kill from outside could find it done.
    const int step = std::uniform_int_distribution<int>(10, 200)(random);
    Process launcher(ps_job(job, 200, 4, 1, mode),
                     {"TESSERA_FAULTS=sigkill:rank=2:step=" + std::to_string(step)},
                     job.dir() / "launcher");
    const auto code = launcher.wait(kJobTimeout);
    ASSERT_EQ(code, 0) << mode << ", killed at step " << step << "\n" << launcher.err();
    EXPECT_NE(launcher.err().find("rank 2 (pid "), std::string::npos) << launcher.err();
    EXPECT_NE(launcher.err().find(") failed: it was killed by SIGKILL"), std::string::npos)
        << launcher.err();
    EXPECT_NE(launcher.err().find("the job goes on without it"), std::string::npos);
    EXPECT_NE(launcher.err().find("ps server 0: lost worker 2"), std::string::npos)
        << launcher.err();
    EXPECT_NE(launcher.out().find("[rank 0] trained 1000 steps"), std::string::npos)
        << mode << "\n"
        << launcher.out();
  }
}

// A job of 3 workers and 1 server (asp) in which worker 2 hangs (SIGSTOP) at step 20, with `more`
// options: checks that it finished, that the server declared the worker lost after the heartbeat
// deadline and that the launcher, told so, killed it; what the job printed.
std::pair<std::string, std::string> run_with_a_hung_worker(const TrainingJob& job, int epochs,
                                                           const std::vector<std::string>& more) {
  std::vector<std::string> args = ps_job(job, epochs, 4, 1, "asp");
  args.insert(args.end(), {"--set", "parallel.heartbeat_timeout_s=1"});
  args.insert(args.end(), more.begin(), more.end());
  Process launcher(args, {"TESSERA_FAULTS=sigstop:rank=2:step=20"}, job.dir() / "launcher");
  EXPECT_EQ(launcher.wait(kJobTimeout), 0) << launcher.err();
  const std::string err = launcher.err();
  EXPECT_NE(err.find("ps server 0: lost worker 2"), std::string::npos) << err;
  EXPECT_NE(err.find("rank 2 (pid "), std::string::npos) << err;
  EXPECT_NE(err.find(") hangs: its server heard nothing from it"), std::string::npos) << err;
  return {launcher.out(), err};
}

// Without restarts the job goes on without the hung worker.
TEST(PsJob, AHungWorkerIsKilledAndTheJobGoesOnWithoutIt) {
  const auto [out, err] = run_with_a_hung_worker(TrainingJob(test_name()), 100, {});
  EXPECT_NE(err.find("the job goes on without it"), std::string::npos) << err;
  EXPECT_NE(out.find("[rank 0] trained 500 steps"), std::string::npos) << out;
}

// With --max-restarts the hung worker is started again as a crashed one is: it goes on from its
// servers' step. The job is long enough (7500 steps) that the others still train by then.
TEST(PsJob, AHungWorkerIsKilledAndStartedAgainUnderMaxRestarts) {
  const auto [out, err] =
      run_with_a_hung_worker(TrainingJob(test_name()), 1500, {"--max-restarts", "1"});
  EXPECT_NE(err.find("starting it again (restart 1 of 1)"), std::string::npos) << err;
  EXPECT_NE(err.find("[rank 2] ps worker 2: started again; going on from step 20"),
            std::string::npos)
      << err;
  EXPECT_NE(out.find("[rank 0] trained 7500 steps"), std::string::npos) << out;
}

// Under bsp no step can complete without every worker: a killed one stops the job, with the
// reason on every worker; --resume then goes on from the last checkpoint, the servers from theirs
// of the same step.
TEST(PsJob, SynchronousJobStopsWhenAWorkerIsKilledAndResumes) {
  TrainingJob job(test_name());
  Process launcher(ps_job(job, 200, 3, 1, "bsp"), {}, job.dir() / "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch 3/", kJobTimeout)) << launcher.err();
  const auto victim = worker_pid(launcher.err(), 1);
  ASSERT_TRUE(victim.has_value()) << launcher.err();
  ASSERT_EQ(::kill(*victim, SIGKILL), 0);
  const auto code = launcher.wait(kJobTimeout);
  EXPECT_EQ(code, 128 + SIGKILL) << launcher.err();
  EXPECT_NE(launcher.err().find("was lost during synchronous (bsp) training"), std::string::npos)
      << launcher.err();

  std::vector<std::string> args = ps_job(job, 200, 3, 1, "bsp");
  args.emplace_back("--resume");
  Process again(args, {}, job.dir() / "again");
  ASSERT_EQ(again.wait(kJobTimeout), 0) << again.err();
  EXPECT_NE(again.err().find("[rank 0] resumed from"), std::string::npos) << again.err();
  EXPECT_NE(again.err().find("ps server 0 of 1 at"), std::string::npos) << again.err();
  EXPECT_NE(again.err().find("server-0.step-"), std::string::npos) << again.err();
  EXPECT_NE(again.out().find("[rank 0] trained 1000 steps"), std::string::npos) << again.out();
}

// With --max-restarts a killed worker (not rank 0) is started again: it finds the servers in their
// address files, asks them where it was, and trains its old share of the data from there.
TEST(PsJob, AKilledWorkerStartedAgainGoesOnFromItsServersStep) {
  TrainingJob job(test_name());
  std::vector<std::string> args = ps_job(job, 200, 4, 1, "asp");
  args.emplace_back("--max-restarts");
  args.emplace_back("1");
  // Under asp rank 2 runs at its own pace: a kill from outside could come after it finished.
  Process launcher(args, {"TESSERA_FAULTS=sigkill:rank=2:step=200"}, job.dir() / "launcher");
  const auto code = launcher.wait(kJobTimeout);
  ASSERT_EQ(code, 0) << launcher.err();
  const std::string err = launcher.err();
  EXPECT_NE(err.find("failed: it was killed by SIGKILL"), std::string::npos) << err;
  EXPECT_NE(err.find("starting it again (restart 1 of 1)"), std::string::npos) << err;
  const auto at = err.find("[rank 2] ps worker 2: started again; going on from step ");
  ASSERT_NE(at, std::string::npos) << err;
  const long step = std::stol(err.substr(at + 56));
  EXPECT_GT(step, 0) << "the servers had its earlier steps";
  EXPECT_LT(step, 1000);
  EXPECT_EQ(launcher.err().find("rank 2 exited"), std::string::npos) << err;
  EXPECT_NE(launcher.out().find("[rank 0] trained 1000 steps"), std::string::npos)
      << launcher.out();
}

// Rank 0 too: started again, it goes on from its servers' step, appending to the metrics and
// writing the checkpoints from there, and the job ends as it would have.
TEST(PsJob, RankZeroKilledIsStartedAgainAndKeepsTheMetricsAndCheckpoints) {
  TrainingJob job(test_name());
  std::vector<std::string> args = ps_job(job, 200, 4, 1, "asp");
  args.insert(args.end(), {"--max-restarts", "1", "--set", "train.checkpoint_every=100"});
  Process launcher(args, {"TESSERA_FAULTS=sigkill:rank=0:step=200"}, job.dir() / "launcher");
  ASSERT_EQ(launcher.wait(kJobTimeout), 0) << launcher.err();
  const std::string err = launcher.err();
  EXPECT_NE(err.find("rank 0 (pid "), std::string::npos) << err;
  EXPECT_NE(err.find("starting it again (restart 1 of 1)"), std::string::npos) << err;
  EXPECT_NE(err.find("[rank 0] ps worker 0: started again; going on from step "), std::string::npos)
      << err;
  EXPECT_NE(launcher.out().find("[rank 0] trained 1000 steps"), std::string::npos)
      << launcher.out();
  // Lines of steps before the kill and after it, and the last step's checkpoint.
  const std::string metrics = read_file(job.metrics());
  EXPECT_NE(metrics.find("\"step\":100,"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"step\":1000,"), std::string::npos) << metrics;
  EXPECT_TRUE(fs::exists(job.dir() / "run" / "checkpoints" / "step-0000001000.ckpt"));
}

// A worker started again after the servers finished the job (it died near the end) has nothing
// left to train: it says so and ends at once, instead of waiting for servers that are gone.
TEST(PsJob, AWorkerStartedAgainAfterTheServersFinishedEndsAtOnce) {
  TrainingJob job(test_name());
  std::vector<std::string> args = ps_job(job, 3, 3, 1, "asp");
  Process launcher(args, {}, job.dir() / "launcher");
  ASSERT_EQ(launcher.wait(kJobTimeout), 0) << launcher.err();
  EXPECT_TRUE(fs::exists(job.dir() / "run" / "ps" / "server-0.done"));
  // As the launcher starts it again: rank 1 of 3, no group, the job's token.
  args.erase(args.begin() + 3, args.begin() + 5);  // --nproc 3
  Process again(args,
                {"TESSERA_RANK=1", "TESSERA_WORLD_SIZE=3", "TESSERA_RESTART=1",
                 "TESSERA_JOB_TOKEN=finished0123456789abcdef"},
                job.dir() / "again");
  ASSERT_EQ(again.wait(10s), 0) << again.err();
  EXPECT_NE(again.err().find("ps worker 1: started again, but the servers finished the job"),
            std::string::npos)
      << again.err();
}

// Under asp and ssp the launcher starts a killed server again (--max-restarts): it comes back from
// its checkpoint on the address it had, the workers reconnect, and the job finishes. Under bsp a
// server is never restarted (the rounds since its checkpoint are lost): the job stops.
TEST(PsJob, AKilledServerComesBackFromItsCheckpointUnderAspAndSsp) {
  std::mt19937 random(5);
  for (const std::string mode : {"asp", "ssp", "bsp"}) {
    TrainingJob job(test_name() + mode);
    std::vector<std::string> args = ps_job(job, 200, 4, 2, mode);
    // A restarted server waits heartbeat_timeout_s for workers its checkpoint saw training.
    for (const char* more : {"--max-restarts", "1", "--set", "parallel.server_checkpoint_s=0.2",
                             "--set", "parallel.heartbeat_timeout_s=2"}) {
      args.emplace_back(more);
    }
    Process launcher(args, {}, job.dir() / "launcher");
    const int epoch = std::uniform_int_distribution<int>(5, 40)(random);
    ASSERT_TRUE(
        launcher.wait_for_output("[rank 0] epoch " + std::to_string(epoch) + "/", kJobTimeout))
        << launcher.err();
    const auto victim = worker_pid(launcher.err(), 3);  // server 1
    ASSERT_TRUE(victim.has_value()) << launcher.err();
    ASSERT_EQ(::kill(*victim, SIGKILL), 0);
    const auto code = launcher.wait(kJobTimeout);
    if (mode == "bsp") {
      EXPECT_EQ(code, 128 + SIGKILL) << launcher.err();
      EXPECT_EQ(launcher.err().find("starting it again"), std::string::npos) << launcher.err();
      continue;
    }
    ASSERT_EQ(code, 0) << mode << ", killed in epoch " << epoch << "\n" << launcher.err();
    EXPECT_NE(launcher.err().find("starting it again (restart 1 of 1)"), std::string::npos)
        << launcher.err();
    EXPECT_NE(launcher.err().find("[rank 3] tessera ps server 1: started from"), std::string::npos)
        << launcher.err();
    EXPECT_NE(launcher.out().find("[rank 0] trained 1000 steps"), std::string::npos)
        << mode << "\n"
        << launcher.out();
  }
}

}  // namespace ps_test
}  // namespace tessera::e2e
