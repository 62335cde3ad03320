// comm::init_from_env: what it reads from the environment (parse_job_env on a fake environment),
// and real processes that join through it without the tessera launcher: as mpirun and srun start
// them, and under a real mpirun where one is installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "process.h"
#include "tessera/comm/init.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;
using comm::JobEnv;
using comm::JobLauncher;
using comm::parse_job_env;

comm::EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

// The ConfigError's message for `vars`, or "" when parsing succeeded.
std::string parse_error(std::map<std::string, std::string> vars) {
  try {
    (void)parse_job_env(fake(std::move(vars)));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(JobEnv, NoLauncherVariablesMeansNoJob) {
  EXPECT_FALSE(parse_job_env(fake({{"HOME", "/root"}, {"TESSERA_JOB_TOKEN", "x"}})));
  // A Slurm batch script (not an srun step) sets SLURM_PROCID but is not one rank of a job.
  EXPECT_FALSE(parse_job_env(fake({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}})));
}

TEST(JobEnv, ReadsTheTesseraLaunchersVariables) {
  auto job = parse_job_env(fake({{"TESSERA_RANK", "3"},
                                 {"TESSERA_WORLD_SIZE", "4"},
                                 {"TESSERA_LOCAL_RANK", "1"},
                                 {"TESSERA_LOCAL_WORLD_SIZE", "2"},
                                 {"TESSERA_STORE_ADDR", "10.1.2.3:29500"},
                                 {"TESSERA_JOB_TOKEN", "tok"},
                                 {"TESSERA_JOB_ID", "0123abcd-job_1"},
                                 {"TESSERA_BACKEND", "gloo"},
                                 {"TESSERA_COMM_TIMEOUT_S", "2.5"},
                                 // Someone else's variables do not override ours.
                                 {"OMPI_COMM_WORLD_RANK", "0"},
                                 {"OMPI_COMM_WORLD_SIZE", "8"}}));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->launcher, JobLauncher::kTessera);
  EXPECT_EQ(job->rank, 3);
  EXPECT_EQ(job->world_size, 4);
  EXPECT_EQ(job->local_rank, 1);
  EXPECT_EQ(job->local_world_size, 2);
  EXPECT_EQ(job->store_host, "10.1.2.3");
  EXPECT_EQ(job->store_port, 29500);
  EXPECT_FALSE(job->hosts_store) << "the tessera launcher hosts the store";
  EXPECT_EQ(job->token, "tok");
  EXPECT_EQ(job->job_id, "0123abcd-job_1");
  EXPECT_EQ(job->backend, "gloo");
  EXPECT_EQ(job->timeout, std::chrono::milliseconds(2500));
}

TEST(JobEnv, ReadsOpenMpiPmiAndSlurmWithRankZeroHostingTheStore) {
  auto ompi = parse_job_env(fake({{"OMPI_COMM_WORLD_RANK", "0"},
                                  {"OMPI_COMM_WORLD_SIZE", "4"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                  {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                  {"MASTER_ADDR", "node1"},
                                  {"MASTER_PORT", "29400"}}));
  ASSERT_TRUE(ompi);
  EXPECT_EQ(ompi->launcher, JobLauncher::kOpenMpi);
  EXPECT_EQ(ompi->world_size, 4);
  EXPECT_EQ(ompi->local_world_size, 2);
  EXPECT_EQ(ompi->store_host, "node1");
  EXPECT_EQ(ompi->store_port, 29400);
  EXPECT_TRUE(ompi->hosts_store);

  auto pmi = parse_job_env(fake({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}}));
  ASSERT_TRUE(pmi);
  EXPECT_EQ(pmi->launcher, JobLauncher::kPmi);
  EXPECT_EQ(pmi->rank, 2);
  EXPECT_FALSE(pmi->local_rank) << "unknown, not guessed";
  EXPECT_FALSE(pmi->hosts_store);

  auto slurm = parse_job_env(fake({{"SLURM_PROCID", "5"},
                                   {"SLURM_STEP_NUM_TASKS", "7"},
                                   {"SLURM_LOCALID", "1"},
                                   {"SLURM_NODEID", "2"},
                                   {"SLURM_STEP_TASKS_PER_NODE", "2(x2),3"}}));
  ASSERT_TRUE(slurm);
  EXPECT_EQ(slurm->launcher, JobLauncher::kSlurm);
  EXPECT_EQ(slurm->rank, 5);
  EXPECT_EQ(slurm->world_size, 7);
  EXPECT_EQ(slurm->local_rank, 1);
  EXPECT_EQ(slurm->local_world_size, 3) << "node 2 of 2,2,3";
}

TEST(JobEnv, UnderSrunWithoutMasterAddrTheStoreIsOnTheFirstNodeAtAPortFromTheJobId) {
  const auto slurm = [](const std::string& nodes, const std::string& restarts) {
    return parse_job_env(fake({{"SLURM_PROCID", "1"},
                               {"SLURM_STEP_NUM_TASKS", "4"},
                               {"SLURM_JOB_ID", "1234567"},
                               {"SLURM_STEP_NODELIST", nodes},
                               {"SLURM_RESTART_COUNT", restarts}}));
  };
  for (const auto& [nodes, first] :
       std::vector<std::pair<std::string, std::string>>{{"node[07-09,12],gpu1", "node07"},
                                                        {"gpu1,node[07-09]", "gpu1"},
                                                        {"rack[2-3]-n[001-004]", "rack2-n001"},
                                                        {"solo", "solo"}}) {
    auto job = slurm(nodes, "0");
    ASSERT_TRUE(job);
    EXPECT_EQ(job->store_host, first) << nodes;
    EXPECT_EQ(job->store_port, 15000 + 1234567 % 10000);
    EXPECT_FALSE(job->hosts_store);
    EXPECT_FALSE(job->requeued);
  }
  EXPECT_TRUE(slurm("solo", "2")->requeued) << "a requeued job resumes";
  try {
    (void)slurm("node[07-", "0");
    FAIL() << "a malformed node list must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(
        std::string(e.what()).find("SLURM_STEP_NODELIST: \"node[07-\" is not a Slurm node list"),
        std::string::npos)
        << e.what();
  }
}

TEST(JobEnv, AJobIdThatCouldNotNameAFileIsRefused) {
  for (const std::string& id :
       {std::string("../escape"), std::string("a/b"), std::string(65, 'x')}) {
    const std::string error =
        parse_error({{"TESSERA_RANK", "0"}, {"TESSERA_WORLD_SIZE", "1"}, {"TESSERA_JOB_ID", id}});
    EXPECT_NE(error.find("TESSERA_JOB_ID: \"" + id + "\" is not 1-64 letters"), std::string::npos)
        << error;
  }
}

TEST(JobEnv, MissingOrInconsistentVariablesAreNamed) {
  EXPECT_NE(parse_error({{"TESSERA_RANK", "1"}}).find("TESSERA_WORLD_SIZE: is not set"),
            std::string::npos)
      << parse_error({{"TESSERA_RANK", "1"}});
  EXPECT_NE(parse_error({{"TESSERA_RANK", "4"}, {"TESSERA_WORLD_SIZE", "4"}})
                .find("TESSERA_RANK: 4 is not below TESSERA_WORLD_SIZE=4"),
            std::string::npos);
  EXPECT_NE(parse_error({{"TESSERA_RANK", "one"}, {"TESSERA_WORLD_SIZE", "4"}})
                .find("TESSERA_RANK: \"one\" is not an integer"),
            std::string::npos);
  EXPECT_NE(
      parse_error({{"TESSERA_RANK", "0"}, {"TESSERA_WORLD_SIZE", "2"}, {"TESSERA_LOCAL_RANK", "0"}})
          .find("TESSERA_LOCAL_WORLD_SIZE: is not set"),
      std::string::npos);
  EXPECT_NE(parse_error({{"TESSERA_RANK", "0"},
                         {"TESSERA_WORLD_SIZE", "2"},
                         {"TESSERA_LOCAL_RANK", "0"},
                         {"TESSERA_LOCAL_WORLD_SIZE", "3"}})
                .find("TESSERA_LOCAL_WORLD_SIZE: 3 exceeds TESSERA_WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(
      parse_error(
          {{"TESSERA_RANK", "0"}, {"TESSERA_WORLD_SIZE", "2"}, {"TESSERA_STORE_ADDR", "10.0.0.1"}})
          .find("TESSERA_STORE_ADDR: \"10.0.0.1\" is not HOST:PORT"),
      std::string::npos);
  EXPECT_NE(
      parse_error(
          {{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node1"}})
          .find("MASTER_PORT: is not set, but MASTER_ADDR is"),
      std::string::npos);
  EXPECT_NE(
      parse_error(
          {{"TESSERA_RANK", "0"}, {"TESSERA_WORLD_SIZE", "2"}, {"TESSERA_COMM_TIMEOUT_S", "-1"}})
          .find("TESSERA_COMM_TIMEOUT_S"),
      std::string::npos);
}

TEST(JobEnv, AWorkerWithoutItsWorldSizeExitsNamingTheVariable) {
  TrainingJob job("worker_without_world_size");
  Process worker({tessera_binary(), "train", job.config(1, 5).string()}, {"TESSERA_RANK=1"},
                 job.dir() / "worker");
  auto code = worker.wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2) << worker.err();
  EXPECT_NE(worker.err().find("TESSERA_WORLD_SIZE"), std::string::npos) << worker.err();
}

// Two `tessera train` processes given the variables mpirun or srun would give them; rank 0 hosts
// the store at MASTER_ADDR:MASTER_PORT.
class ExternalLauncherTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExternalLauncherTest, RanksFromTheLaunchersEnvironmentTrainTogether) {
  const std::string kind = GetParam();
  TrainingJob job("external_" + kind);
  const std::string config = job.config(2, 8).string();
  const int port = free_port();
  std::vector<std::unique_ptr<Process>> ranks;
  for (int rank = 1; rank >= 0; --rank) {  // rank 1 first: it must wait for rank 0's store
    const std::string r = std::to_string(rank);
    std::vector<std::string> env{"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                                 "TESSERA_JOB_TOKEN=external0123456789abcdef",
                                 // The test fakes the launcher: no real MPI job to join.
                                 "TESSERA_BACKEND=gloo", "TESSERA_COMM_TIMEOUT_S=20"};
    if (kind == "mpirun") {
      env.insert(env.end(), {"OMPI_COMM_WORLD_RANK=" + r, "OMPI_COMM_WORLD_SIZE=2",
                             "OMPI_COMM_WORLD_LOCAL_RANK=" + r, "OMPI_COMM_WORLD_LOCAL_SIZE=2"});
    } else {
      env.insert(env.end(), {"SLURM_PROCID=" + r, "SLURM_STEP_NUM_TASKS=2", "SLURM_LOCALID=" + r,
                             "SLURM_NODEID=0", "SLURM_STEP_TASKS_PER_NODE=2"});
    }
    ranks.push_back(
        std::make_unique<Process>(std::vector<std::string>{tessera_binary(), "train", config}, env,
                                  job.dir() / ("rank" + r)));
  }
  for (auto& p : ranks) {
    auto code = p->wait(30s);
    ASSERT_TRUE(code.has_value()) << p->err();
    EXPECT_EQ(*code, 0) << p->err();
  }
  // ranks[1] is rank 0: the only one that reports; 240 samples in global batches of 48, 2 epochs.
  EXPECT_NE(ranks[1]->out().find("trained 10 steps"), std::string::npos) << ranks[1]->out();
  EXPECT_EQ(ranks[0]->out().find("trained"), std::string::npos) << ranks[0]->out();
  EXPECT_EQ(count_lines_with(read_file(job.metrics()), "\"train_loss\""), 2);
}

INSTANTIATE_TEST_SUITE_P(Launchers, ExternalLauncherTest, ::testing::Values("mpirun", "srun"),
                         [](const auto& info) { return info.param; });

// Under a real mpirun: with Gloo (rank 0 hosts the store at MASTER_ADDR:MASTER_PORT), and with
// backend auto, which is MPI when tessera is built with it (no store then).
class RealMpirunTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RealMpirunTest, RunsTwoRanks) {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "mpirun is not installed (Debian: openmpi-bin)";
  }
  TrainingJob job("real_mpirun_" + GetParam());
  std::string exports = " -x TESSERA_BACKEND=" + GetParam();
  if (GetParam() == "gloo") {
    // The token by name only: mpirun's own command line is readable by every user.
    exports += " -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=" + std::to_string(free_port()) +
               " -x TESSERA_JOB_TOKEN";
  }
  // Open MPI's initialisation leaks by design; tools/lsan.supp hides it, but only with full stacks.
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string asan_options = std::string("ASAN_OPTIONS=") +
                                   (asan ? std::string(asan) + ":" : "") +
                                   "fast_unwind_on_malloc=0";
  Process mpirun({"/bin/sh", "-c",
                  "exec mpirun --allow-run-as-root --oversubscribe -np 2" + exports + " " +
                      tessera_binary() + " train " + job.config(2, 8).string()},
                 {asan_options, "TESSERA_JOB_TOKEN=mpirun0123456789abcdef"}, job.dir() / "mpirun");
  auto code = mpirun.wait(60s);
  ASSERT_TRUE(code.has_value()) << mpirun.err();
  EXPECT_EQ(*code, 0) << mpirun.out() << mpirun.err();
  EXPECT_EQ(count_lines_with(mpirun.out(), "trained 10 steps"), 1) << mpirun.out();
  EXPECT_EQ(count_lines_with(read_file(job.metrics()), "\"train_loss\""), 2);
}

INSTANTIATE_TEST_SUITE_P(Backends, RealMpirunTest, ::testing::Values("gloo", "auto"),
                         [](const auto& info) { return info.param; });

// Two processes of this test binary in the "mismatch" role (see main.cc), joined through
// init_from_env at a store this test hosts, issue different collectives.
TEST(CollectiveMismatch, TwoProcessesIssuingDifferentCollectivesAreToldSo) {
  const std::string token = "mismatch0123456789abcdef";
  comm::TcpStoreServer server(comm::TcpStoreServerOptions{.token = token});
  TrainingJob job("mismatch");
  std::vector<std::unique_ptr<Process>> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.push_back(std::make_unique<Process>(
        std::vector<std::string>{"/proc/self/exe"},
        std::vector<std::string>{"TESSERA_E2E_ROLE=mismatch",
                                 "TESSERA_RANK=" + std::to_string(rank), "TESSERA_WORLD_SIZE=2",
                                 "TESSERA_LOCAL_RANK=" + std::to_string(rank),
                                 "TESSERA_LOCAL_WORLD_SIZE=2", "TESSERA_BACKEND=gloo",
                                 "TESSERA_STORE_ADDR=" + server.address(),
                                 "TESSERA_JOB_TOKEN=" + token, "TESSERA_COMM_TIMEOUT_S=10"},
        job.dir() / ("rank" + std::to_string(rank))));
  }
  for (auto& p : ranks) {
    auto code = p->wait(30s);
    ASSERT_TRUE(code.has_value()) << "hang: " << p->err();
    EXPECT_EQ(*code, 3) << "expected CollectiveMismatchError:\n" << p->out() << p->err();
    EXPECT_NE(p->out().find("rank 1"), std::string::npos) << p->out();
  }
}

}  // namespace
}  // namespace tessera::e2e
