// The Trainer on several ranks (threads over Gloo) against one process on the global batch.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "comm/run_ranks.h"
#include "tessera/core/random.h"
#include "tessera/train/trainer.h"
#include "train/parameter_values.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class TrainerDdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_trainer_ddp_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Generator gen(5);
    std::ofstream out(dir_ / "train.csv");
    out << "a,b,c,d,label\n";
    for (int r = 0; r < 240; ++r) {
      int label = r % 2;
      for (int f = 0; f < 4; ++f) out << (f % 2 == label ? 1.0 : -1.0) + 0.5 * gen.normal() << ",";
      out << label << "\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // With dropout: the ranks' masks together must be the one process's mask.
  Config config(const std::string& run, int64_t batch, const std::string& strategy) {
    return parse_config(
        R"(
[model]
layers = [{ type = "linear", out = 8 }, { type = "tanh" }, { type = "dropout", p = 0.3 },
          { type = "linear", out = 2 }]
[optimizer]
lr = 0.05
momentum = 0.9
[train]
epochs = 2
seed = 3
)",
        "ddp.toml",
        {"data.train=\"csv:" + (dir_ / "train.csv").string() + "\"", "data.test=\"\"",
         "data.batch_size=" + std::to_string(batch), "parallel.strategy=\"" + strategy + "\"",
         "train.run_dir=\"" + (dir_ / run).string() + "\""});
  }

  Config zero_config(int64_t max_steps) {
    return parse_config(
        R"(
[model]
layers = [{ type = "linear", out = 8 }, { type = "tanh" }, { type = "linear", out = 2 }]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 5
seed = 3
log_every = 1
[parallel]
strategy = "zero"
zero_stage = 2
)",
        "zero.toml",
        {"data.train=\"csv:" + (dir_ / "train.csv").string() + "\"", "data.test=\"\"",
         "data.batch_size=8", "train.max_steps=" + std::to_string(max_steps),
         "train.run_dir=\"" + (dir_ / "zero").string() + "\""});
  }

  // The loss logged at each step of the run, in order (later runs append to the same file).
  std::vector<std::pair<int64_t, double>> losses() {
    std::vector<std::pair<int64_t, double>> out;
    std::ifstream in(dir_ / "zero" / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto step_at = line.find("\"step\":");
      auto loss_at = line.find("\"loss\":");
      if (step_at == std::string::npos || loss_at == std::string::npos) continue;
      out.emplace_back(std::stoll(line.substr(step_at + 7)), std::stod(line.substr(loss_at + 7)));
    }
    return out;
  }

  fs::path dir_;
};

// Within 1e-5 relative: the ranks' sums are in another order than one process's.
void expect_close(const std::vector<std::vector<float>>& got,
                  const std::vector<std::vector<float>>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), expected[i].size()) << i;
    for (size_t k = 0; k < got[i].size(); ++k) {
      EXPECT_NEAR(got[i][k], expected[i][k], 1e-5 * (1 + std::abs(expected[i][k])))
          << i << "," << k;
    }
  }
}

TEST_F(TrainerDdpTest, TwoRanksMatchOneProcessOnTheGlobalBatch) {
  Trainer single(config("single", 32, "none"), {.progress = nullptr});
  single.run();
  auto expected = parameter_values(single);
  std::vector<std::vector<float>> got;
  std::mutex m;
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Trainer t(config("ddp", 32, "ddp"), {.group = &group, .progress = nullptr});
    TrainResult r = t.run();
    EXPECT_EQ(r.world_size, 2);
    EXPECT_EQ(r.steps, 2 * ((240 + 31) / 32));  // 2 epochs of ceil(120 / 16) steps per rank
    std::lock_guard lock(m);
    if (group.rank() == 0) got = parameter_values(t);
  });
  expect_close(got, expected);
}

// data.batch_per_worker: each rank's batch is kept and the lr scaled by the ranks, so 2 ranks of
// batch 16 at lr 0.05 train as one process on batch 32 at lr 0.1.
TEST_F(TrainerDdpTest, APerWorkerBatchScalesTheGlobalBatchAndTheLearningRateWithTheRanks) {
  Config one = config("single", 32, "none");
  one.optimizer.lr = 0.1;
  Trainer single(one, {.progress = nullptr});
  single.run();
  auto expected = parameter_values(single);
  std::vector<std::vector<float>> got;
  std::mutex m;
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Config per_worker = config("ddp", 16, "ddp");
    per_worker.data.batch_per_worker = true;
    Trainer t(per_worker, {.group = &group, .progress = nullptr});
    EXPECT_EQ(t.run().steps, 2 * ((240 + 31) / 32));
    std::lock_guard lock(m);
    if (group.rank() == 0) got = parameter_values(t);
  });
  expect_close(got, expected);
}

// Resumed on fewer ranks, a per-worker batch job's lr is scaled for the ranks it has now, also
// under a schedule whose state the checkpoint holds.
TEST_F(TrainerDdpTest, APerWorkerBatchJobResumedOnFewerRanksScalesItsLearningRateDown) {
  auto run_config = [&](int64_t max_steps) {
    Config c = zero_config(max_steps);
    c.parallel.strategy = "ddp";
    c.data.batch_per_worker = true;
    c.optimizer.schedule = "step";
    c.optimizer.step_size = 1000;  // constant over the run, but a schedule with a state
    return c;
  };
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Trainer t(run_config(4), {.group = &group, .progress = nullptr});
    EXPECT_EQ(t.run().steps, 4);
  });
  Trainer alone(run_config(8), {.resume = true, .progress = nullptr});
  EXPECT_EQ(alone.run().steps, 8);
  std::ifstream in(dir_ / "zero" / "metrics.jsonl");
  std::vector<double> lrs;
  for (std::string line; std::getline(in, line);) {
    if (const auto at = line.find("\"lr\":"); at != std::string::npos) {
      lrs.push_back(std::stod(line.substr(at + 5)));
    }
  }
  ASSERT_EQ(lrs.size(), 8u);
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(lrs[i], 0.02) << "step " << i + 1;
  for (size_t i = 4; i < 8; ++i) EXPECT_DOUBLE_EQ(lrs[i], 0.01) << "step " << i + 1;
}

TEST_F(TrainerDdpTest, ZeroCheckpointFromFourRanksResumesOnTwoAndOne) {
  comm::testing::run_ranks(4, [&](comm::ProcessGroup& group) {
    Trainer t(zero_config(6), {.group = &group, .progress = nullptr});
    EXPECT_EQ(t.run().steps, 6);
  });
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Trainer t(zero_config(10), {.group = &group, .resume = true, .progress = nullptr});
    EXPECT_EQ(t.run().steps, 10);  // went on from step 6
  });
  Trainer alone(zero_config(14), {.resume = true, .progress = nullptr});
  EXPECT_EQ(alone.run().steps, 14);  // went on from step 10

  auto curve = losses();
  ASSERT_EQ(curve.size(), 14u);
  for (size_t i = 0; i < curve.size(); ++i) EXPECT_EQ(curve[i].first, static_cast<int64_t>(i + 1));
  // Continuing, not restarting: after each resume the loss stays near where it was, well below
  // the untrained loss of the first step.
  const double first = curve[0].second;
  EXPECT_LT(curve[6].second, 0.8 * first) << "resumed on 2 ranks at the start";
  EXPECT_LT(curve[10].second, 0.8 * first) << "resumed on 1 rank at the start";
  EXPECT_LT(curve[13].second, curve[0].second);
}

TEST_F(TrainerDdpTest, StrategyNoneWithSeveralRanksIsAConfigError) {
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    try {
      Trainer t(config("bad", 16, "none"), {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), "parallel.strategy");
    }
  });
}

}  // namespace
}  // namespace tessera::train
