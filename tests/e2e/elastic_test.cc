// Elastic jobs: `tessera train` agents that survive crashed, hung and vanished workers and hosts,
// shrink and grow, and resume from the newest checkpoint, with faults injected at chosen steps
// (TESSERA_FAULTS, src/cli/fault_injection.h).
#include <signal.h>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "process.h"
#include "tessera/train/checkpoint.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "elastic0123456789abcdef";

// `tessera train` on the small CSV job: 8 epochs of 5 steps, a checkpoint every 5 steps, into
// <dir>/<run>, plus `extra` arguments.
std::vector<std::string> train_args(const TrainingJob& job, const std::string& run,
                                    std::vector<std::string> extra,
                                    const std::string& strategy = "ddp") {
  std::vector<std::string> args{tessera_binary(),
                                "train",
                                job.config(8, 5, "job_" + strategy, strategy).string(),
                                "--set",
                                "train.run_dir=\"" + (job.dir() / run).string() + "\"",
                                "--set",
                                "train.checkpoint_every=5",
                                "--set",
                                "optimizer.momentum=0.9",
                                "--grace",
                                "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

fs::path last_checkpoint(const TrainingJob& job, const std::string& run) {
  return job.dir() / run / "checkpoints" / "step-0000000040.ckpt";
}

// Trains the job uninterrupted on `nproc` processes into <dir>/plain.
void train_uninterrupted(const TrainingJob& job, int nproc, const std::string& strategy = "ddp",
                         const std::vector<std::string>& extra = {}) {
  std::vector<std::string> more{"--nproc", std::to_string(nproc)};
  more.insert(more.end(), extra.begin(), extra.end());
  Process p(train_args(job, "plain", more, strategy), {"TESSERA_BACKEND=gloo"},
            job.dir() / "plain");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
}

// Without memory copies (or when every copy died) the workers start again from storage.
TEST(Elastic, AKilledWorkerIsStartedAgainAndTheRunEndsBitIdenticalToAnUninterruptedOne) {
  TrainingJob job("elastic_kill");
  train_uninterrupted(job, 2);
  Process p(
      train_args(job, "elastic",
                 {"--nproc", "2", "--max-restarts", "1", "--set", "train.memory_copy_every=0"}),
      {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigkill:rank=1:step=12"}, job.dir() / "elastic");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  const std::string err = p.err();
  EXPECT_NE(err.find("fault injected: rank 1 at step 12: sigkill"), std::string::npos) << err;
  EXPECT_NE(err.find("rank 1 (pid"), std::string::npos) << err;
  EXPECT_NE(err.find("killed by SIGKILL"), std::string::npos) << err;
  EXPECT_NE(err.find("round 1: node 0 of 1, world size 2"), std::string::npos) << err;
  EXPECT_NE(err.find("round 1 resumed from step 10"), std::string::npos) << err;
  EXPECT_NE(err.find("2 step(s) lost"), std::string::npos) << err;
  EXPECT_NE(err.find("resumed from " + (job.dir() / "elastic" / "checkpoints").string()),
            std::string::npos)
      << err;
  EXPECT_EQ(model_of(last_checkpoint(job, "elastic")), model_of(last_checkpoint(job, "plain")));
}

// A job of --nproc 1:2 with memory copies every 2 steps in which `killed` dies at step 13: checks
// that it finished and that the survivor went on as rank 0 in its own process; its output.
std::string shrink_after_a_kill(const TrainingJob& job, int killed) {
  Process p(
      train_args(job, "elastic",
                 {"--nproc", "1:2", "--max-restarts", "1", "--set", "train.memory_copy_every=2"}),
      {"TESSERA_BACKEND=gloo",
       "TESSERA_FAULTS=sigkill:rank=" + std::to_string(killed) + ":step=13"},
      job.dir() / "elastic");
  EXPECT_EQ(p.wait(120s), 0) << p.err();
  const std::string err = p.err();
  const int survivor = 1 - killed;
  const std::optional<pid_t> pid = worker_pid(err, survivor);
  EXPECT_TRUE(pid.has_value()) << err;
  EXPECT_NE(err.find("rank " + std::to_string(survivor) + " -> 0 (pid " +
                     std::to_string(pid.value_or(-1)) + ")"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("memory copy of step 12"), std::string::npos) << err;
  return err;
}

// Rank 0 killed: the agent still counts the steps lost, from rank 1's reports, and the survivor
// goes on as rank 0 from its memory copy.
TEST(Elastic, WhenRankZeroDiesTheStepsLostAreCountedFromRankOne) {
  const std::string err = shrink_after_a_kill(TrainingJob("elastic_rank0"), 0);
  EXPECT_NE(err.find("the last round had reached step 13: 1 step(s) lost"), std::string::npos)
      << err;
}

// With --nproc 1:2 the survivor of a killed worker goes on alone in its own process, from its
// memory copy, and nothing is started again.
TEST(Elastic, TheSurvivorOfAShrinkingJobGoesOnInItsProcessFromItsMemoryCopy) {
  TrainingJob job("elastic_shrink");
  const std::string err = shrink_after_a_kill(job, 1);
  EXPECT_NE(err.find("round 1: node 0 of 1, world size 1"), std::string::npos) << err;
  EXPECT_EQ(count_lines_with(err, "started rank"), 1) << err;  // round 0's only
  EXPECT_NE(err.find("resumed from rank 0's memory copy of step 12"), std::string::npos) << err;
  EXPECT_NE(err.find("without reading storage"), std::string::npos) << err;
  EXPECT_NE(err.find("1 step(s) lost"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(last_checkpoint(job, "elastic"))) << err;
}

TEST(Elastic, AHungWorkerIsStoppedByItsPeersDeadlineAndTheRunEndsBitIdentical) {
  TrainingJob job("elastic_hang");
  train_uninterrupted(job, 2);
  Process p(train_args(job, "elastic",
                       {"--nproc", "2", "--max-restarts", "1", "--set", "parallel.timeout_s=2"}),
            {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigstop:rank=0:step=12"},
            job.dir() / "elastic");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  const std::string err = p.err();
  EXPECT_NE(err.find("fault injected: rank 0 at step 12: sigstop"), std::string::npos) << err;
  EXPECT_NE(err.find("round 1 resumed from step 10"), std::string::npos) << err;
  EXPECT_EQ(model_of(last_checkpoint(job, "elastic")), model_of(last_checkpoint(job, "plain")));
  // The stopped worker was ended with its round, not left behind.
  const std::optional<pid_t> stopped = worker_pid(err, 0);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_FALSE(pid_alive(*stopped));
}

// The newest checkpoint damaged as its writer dies: the next round says so and resumes from the
// one before, and the run still ends as one never interrupted.
TEST(Elastic, ACorruptOrTruncatedNewestCheckpointIsSkippedForTheOneBefore) {
  TrainingJob job("elastic_corrupt");
  train_uninterrupted(job, 2);
  for (const std::string kind : {"corrupt", "truncate"}) {
    const std::string run = "elastic_" + kind;
    Process p(train_args(job, run,
                         {"--nproc", "2", "--max-restarts", "1", "--set",
                          "train.async_checkpoint=false", "--set", "train.memory_copy_every=0"}),
              {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=" + kind + ":rank=0:step=12"},
              job.dir() / run);
    ASSERT_EQ(p.wait(120s), 0) << p.err();
    const std::string err = p.err();
    EXPECT_NE(err.find("fault injected: " + kind + " "), std::string::npos) << err;
    EXPECT_NE(err.find("resume: skipped"), std::string::npos) << err;
    EXPECT_NE(err.find("step-0000000010.ckpt"), std::string::npos) << err;
    EXPECT_NE(err.find("round 1 resumed from step 5"), std::string::npos) << err;
    EXPECT_EQ(model_of(last_checkpoint(job, run)), model_of(last_checkpoint(job, "plain")));
  }
}

// A checkpoint file newer than the survivors' memory copies sends the round to storage; when that
// file does not verify and the one before is older than the copies, the copies win.
TEST(Elastic, ACorruptCheckpointNewerThanTheMemoryCopyLeavesTheRoundToTheCopy) {
  TrainingJob job("elastic_corrupt_copy");
  train_uninterrupted(job, 2);
  // Copies at steps 4 and 8, checkpoints at 5 and 10; the one of step 10 is damaged at step 11.
  Process p(train_args(job, "elastic",
                       {"--nproc", "2", "--max-restarts", "1", "--set",
                        "train.async_checkpoint=false", "--set", "train.memory_copy_every=4"}),
            {"TESSERA_FAULTS=corrupt:rank=0:step=11"}, job.dir() / "elastic");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  const std::string err = p.err();
  EXPECT_NE(err.find("resume: skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("memory copy of step 8 (epoch"), std::string::npos) << err;
  EXPECT_NE(err.find("round 1 resumed from step 8"), std::string::npos) << err;
  EXPECT_EQ(model_of(last_checkpoint(job, "elastic")), model_of(last_checkpoint(job, "plain")));
}

TEST(Elastic, FailuresBeyondMaxRestartsStopTheJobWithItsCheckpointsIntact) {
  TrainingJob job("elastic_limit");
  Process p(train_args(job, "elastic", {"--nproc", "2", "--max-restarts", "1"}),
            {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=exit:rank=1:step=12:attempt=any"},
            job.dir() / "elastic");
  const std::optional<int> code = p.wait(120s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::string err = p.err();
  EXPECT_NE(err.find("failed 2 time(s), more than --max-restarts 1 allows"), std::string::npos)
      << err;
  EXPECT_EQ(count_lines_with(err, "[rank 1] fault injected: rank 1 at step 12: exit"), 2) << err;
  // What was saved is there to resume by hand.
  const train::CheckpointDir dir((job.dir() / "elastic" / "checkpoints").string(), 3);
  const std::optional<train::Checkpoint> newest = dir.latest_valid(nullptr);
  ASSERT_TRUE(newest.has_value());
  EXPECT_NE(newest->path.find("step-0000000010.ckpt"), std::string::npos) << newest->path;
}

// Three hosts of one worker each (agents on this machine with their own rendezvous address):
// one host vanishes (its worker kills its agent and itself), the job goes on with two, and a new
// host joins while rank 0 is slow, making three again.
TEST(Elastic, AHostThatVanishesIsLeftBehindAndAHostThatComesIsLetIn) {
  TrainingJob job("elastic_hosts");
  const std::string rdzv = "127.0.0.1:" + std::to_string(free_port());
  const std::vector<std::string> agent{"--nproc",        "1", "--nnodes",    "2:3", "--rdzv", rdzv,
                                       "--max-restarts", "2", "--rdzv-wait", "1"};
  const std::vector<std::string> env{
      "TESSERA_BACKEND=gloo", std::string("TESSERA_JOB_TOKEN=") + kToken,
      // Rank 2 of round 0 takes its host down at step 12; rank 0 of round 1 slows down at step
      // 17 long enough for the fourth host to come.
      "TESSERA_FAULTS=host:rank=2:step=12,slow:rank=0:step=17:attempt=1:ms=4000"};
  std::vector<std::unique_ptr<Process>> hosts;
  for (int h = 0; h < 3; ++h) {
    hosts.push_back(std::make_unique<Process>(train_args(job, "elastic", agent), env,
                                              job.dir() / ("host" + std::to_string(h))));
  }
  // Whichever host holds rank 0 in round 1 says when it resumed.
  bool resumed = false;
  for (int i = 0; i < 600 && !resumed; ++i) {
    for (const auto& h : hosts)
      resumed = resumed || h->err().find("round 1 resumed") != std::string::npos;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(resumed);
  hosts.push_back(
      std::make_unique<Process>(train_args(job, "elastic", agent), env, job.dir() / "host3"));
  int finished = 0;
  int vanished = 0;
  std::string all;
  for (const auto& h : hosts) {
    const std::optional<int> code = h->wait(120s);
    ASSERT_TRUE(code.has_value());
    all += h->err();
    if (*code == 0) ++finished;
    if (*code == 128 + SIGKILL) ++vanished;
  }
  EXPECT_EQ(finished, 3) << all;
  EXPECT_EQ(vanished, 1) << all;
  EXPECT_NE(all.find("round 1: node 0 of 2, world size 2"), std::string::npos) << all;
  EXPECT_NE(all.find("node(s) wait to join"), std::string::npos) << all;
  EXPECT_NE(all.find("round 2: node 0 of 3, world size 3"), std::string::npos) << all;
  EXPECT_TRUE(fs::exists(last_checkpoint(job, "elastic"))) << all;
}

// A spare, its data loaded, takes the killed worker's place: no worker starts after the failure,
// and the run ends bit-identical to an uninterrupted one.
TEST(Elastic, ASpareTakesAKilledWorkersPlaceAndTheRunEndsBitIdentical) {
  TrainingJob job("elastic_spare");
  train_uninterrupted(job, 2);
  Process p(train_args(job, "elastic",
                       {"--nproc", "2", "--spares", "1", "--max-restarts", "1", "--set",
                        "train.memory_copy_every=2"}),
            {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigkill:rank=1:step=13"},
            job.dir() / "elastic");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  const std::string err = p.err();
  EXPECT_EQ(count_lines_with(err, "started rank"), 1) << err;  // round 0's only
  // The next spare starts once round 1 has resumed, which this short run may end before.
  EXPECT_GE(count_lines_with(err, "started a spare"), 1) << err;
  EXPECT_NE(err.find("rank 0 -> 0 (pid"), std::string::npos) << err;
  EXPECT_NE(err.find("a spare -> 1 (pid"), std::string::npos) << err;
  EXPECT_NE(err.find("resumed from rank 0's memory copy of step 12"), std::string::npos) << err;
  EXPECT_EQ(model_of(last_checkpoint(job, "elastic")), model_of(last_checkpoint(job, "plain")));
  // The spare left over was stopped with the job: no process the agent named is alive.
  const std::regex pid_pattern("\\(pid ([0-9]+)\\)");
  for (auto it = std::sregex_iterator(err.begin(), err.end(), pid_pattern);
       it != std::sregex_iterator(); ++it) {
    EXPECT_FALSE(pid_alive(static_cast<pid_t>(std::stol((*it)[1])))) << (*it)[0];
  }
}

// Every strategy's memory copies bring a job whose worker was killed back to where it was,
// without storage: the run ends as one never interrupted, bit for bit. (Parameter-server jobs
// are not elastic.)
struct StrategyCase {
  std::string name;
  std::string strategy;
  std::vector<std::string> sets;
};

class ElasticStrategies : public ::testing::TestWithParam<StrategyCase> {};

TEST_P(ElasticStrategies, AKilledWorkerCostsOnlyTheStepsSinceTheMemoryCopy) {
  const StrategyCase& c = GetParam();
  TrainingJob job("elastic_" + c.name);
  std::vector<std::string> sets;
  for (const std::string& s : c.sets) sets.insert(sets.end(), {"--set", s});
  train_uninterrupted(job, 2, c.strategy, sets);
  std::vector<std::string> extra{"--nproc", "2",     "--max-restarts",
                                 "1",       "--set", "train.memory_copy_every=2"};
  extra.insert(extra.end(), sets.begin(), sets.end());
  Process p(train_args(job, "elastic", extra, c.strategy),
            {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigkill:rank=1:step=13"},
            job.dir() / "elastic");
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  // The newest checkpoint on storage is step 10's.
  EXPECT_NE(
      p.err().find("[rank 0] resumed from the memory copy of step 12 in 2 pieces, from rank 0"),
      std::string::npos)
      << p.err();
  EXPECT_NE(p.err().find("round 1 resumed from step 12"), std::string::npos) << p.err();
  EXPECT_EQ(model_of(last_checkpoint(job, "elastic")), model_of(last_checkpoint(job, "plain")));
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, ElasticStrategies,
    ::testing::Values(StrategyCase{"zero1", "zero", {"parallel.zero_stage=1"}},
                      StrategyCase{"zero2", "zero", {"parallel.zero_stage=2"}},
                      StrategyCase{"zero3", "zero", {"parallel.zero_stage=3"}},
                      // A stage waiting on its dead neighbour's activations notices at once.
                      StrategyCase{"pipeline", "pipeline", {"parallel.micro_batches=2"}},
                      StrategyCase{"tensor", "tensor", {}}),
    [](const auto& info) { return info.param.name; });

// Where no rank holds the whole state, each keeps its piece of the memory copy and its partner's
// (rank r + 1's on one host): two dead ranks leave every piece to a survivor unless they were
// partners, and then the job goes on from storage. Either way the run ends bit-identical.
std::string kill_two_of_four(const TrainingJob& job, const std::string& run, int a, int b) {
  const std::vector<std::string> extra{"--nproc",        "4",
                                       "--max-restarts", "2",
                                       "--set",          "train.memory_copy_every=2",
                                       "--set",          "parallel.zero_stage=3"};
  Process p(train_args(job, run, extra, "zero"),
            {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigkill:rank=" + std::to_string(a) +
                                         ":step=13,sigkill:rank=" + std::to_string(b) + ":step=13"},
            job.dir() / run);
  EXPECT_EQ(p.wait(120s), 0) << p.err();
  EXPECT_EQ(model_of(last_checkpoint(job, run)), model_of(last_checkpoint(job, "plain")));
  return p.err();
}

TEST(Elastic, AMemoryCopyInPiecesSurvivesTwoDeadRanksUnlessTheyWerePartners) {
  TrainingJob job("elastic_pieces");
  train_uninterrupted(job, 4, "zero", {"--set", "parallel.zero_stage=3"});
  // Ranks 1 and 3 held pieces 1-2 and 3-0; ranks 0 and 2 (now 0 and 1) hold 0-1 and 2-3.
  std::string err = kill_two_of_four(job, "apart", 1, 3);
  EXPECT_NE(err.find("resumed from the memory copy of step 12 in 4 pieces, from ranks 0, 1"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("round 1 resumed from step 12"), std::string::npos) << err;
  // Ranks 1 and 2 both held piece 2.
  err = kill_two_of_four(job, "partners", 1, 2);
  EXPECT_EQ(err.find("resumed from the memory copy"), std::string::npos) << err;
  EXPECT_NE(err.find("resumed from " + (job.dir() / "partners" / "checkpoints").string()),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("round 1 resumed from step 10"), std::string::npos) << err;
}

// A worker that exits 2 (its config or environment refused) ends an elastic job at once: starting
// it again cannot help. Malformed ranges are refused before anything starts.
TEST(Elastic, ABadConfigEndsTheJobAtOnceAndBadRangesAreRefused) {
  TrainingJob job("elastic_bad");
  Process bad_faults(train_args(job, "elastic", {"--nproc", "2", "--max-restarts", "3"}),
                     {"TESSERA_BACKEND=gloo", "TESSERA_FAULTS=sigkill:rank=1"},
                     job.dir() / "bad_faults");
  EXPECT_EQ(bad_faults.wait(60s), 2) << bad_faults.err();
  EXPECT_NE(bad_faults.err().find("TESSERA_FAULTS: \"sigkill:rank=1\": needs rank= and step="),
            std::string::npos)
      << bad_faults.err();
  EXPECT_EQ(bad_faults.err().find("round 1"), std::string::npos) << bad_faults.err();
  for (const auto& [option, value, says] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--nproc", "3:2", "MIN is above MAX"},
           {"--nproc", "0:2", "is not N or MIN:MAX"},
           {"--nnodes", "1:x", "is not N or MIN:MAX"}}) {
    Process p(train_args(job, "ranges", {option, value}), {}, job.dir() / "ranges");
    EXPECT_EQ(p.wait(30s), 2) << p.err();
    EXPECT_NE(p.err().find(option + ": \"" + value + "\""), std::string::npos) << p.err();
    EXPECT_NE(p.err().find(says), std::string::npos) << p.err();
  }
  Process fixed(train_args(job, "ranges", {"--nproc", "1:2", "--node-rank", "0"}), {},
                job.dir() / "node_rank");
  EXPECT_EQ(fixed.wait(30s), 2) << fixed.err();
  EXPECT_NE(fixed.err().find("--node-rank: is not used by an elastic job"), std::string::npos)
      << fixed.err();
}

}  // namespace
}  // namespace tessera::e2e
