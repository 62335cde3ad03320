// The Trainer's parameter-server strategy: workers and servers as threads of one process, each
// with its rank of a Gloo group, against one process on the global batch.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "comm/run_ranks.h"
#include "tessera/core/random.h"
#include "tessera/train/parameter_server.h"
#include "tessera/train/trainer.h"
#include "train/parameter_values.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class TrainerPsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_trainer_ps_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Generator gen(5);
    std::ofstream out(dir_ / "train.csv");
    out << "a,b,c,d,label\n";
    for (int r = 0; r < 240; ++r) {
      const int label = r % 2;
      for (int f = 0; f < 4; ++f) out << (f % 2 == label ? 1.0 : -1.0) + 0.5 * gen.normal() << ",";
      out << label << "\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // With dropout: the workers' masks together must be the one process's mask.
  Config config(const std::string& run, const std::string& strategy,
                const std::string& consistency = "bsp", const std::string& optimizer = "sgd") {
    return parse_config(
        R"(
[model]
layers = [{ type = "linear", out = 8 }, { type = "tanh" }, { type = "dropout", p = 0.3 },
          { type = "linear", out = 2 }]
[optimizer]
lr = 0.05
momentum = 0.9
schedule = "cosine"
[train]
epochs = 2
seed = 3
[parallel]
servers = 2
staleness = 1
timeout_s = 30
)",
        "ps.toml",
        {"data.train=\"csv:" + (dir_ / "train.csv").string() + "\"", "data.test=\"\"",
         "data.batch_size=32", "parallel.strategy=\"" + strategy + "\"",
         "parallel.consistency=\"" + consistency + "\"", "optimizer.name=\"" + optimizer + "\"",
         "train.run_dir=\"" + (dir_ / run).string() + "\""});
  }

  // Runs `ranks` processes as threads: the last two serve, the others train. Worker 0's final
  // parameters and result.
  std::pair<std::vector<std::vector<float>>, TrainResult> run_ps(const Config& c, int ranks,
                                                                 bool resume = false) {
    std::vector<std::vector<float>> params;
    TrainResult result;
    std::mutex m;
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      if (is_parameter_server(c, group.rank(), group.size())) {
        serve_parameters(c, group, {.log = nullptr, .resume = resume});
        return;
      }
      Trainer t(c, {.group = &group, .resume = resume, .progress = nullptr});
      const TrainResult r = t.run();
      std::lock_guard lock(m);
      if (group.rank() == 0) {
        result = r;
        for (auto& p : t.model().parameters()) params.push_back(p.data().to_vector<float>());
      }
    });
    return {params, result};
  }

  fs::path dir_;
};

void expect_near(const std::vector<std::vector<float>>& got,
                 const std::vector<std::vector<float>>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), expected[i].size());
    for (size_t k = 0; k < got[i].size(); ++k) {
      EXPECT_NEAR(got[i][k], expected[i][k], 1e-5 * (1 + std::abs(expected[i][k])))
          << i << "," << k;
    }
  }
}

// BSP: each step applies the mean of the workers' gradients, so two workers (each on half of
// every global batch) with two servers give one process's parameters. SGD with momentum, a
// cosine schedule (the lr travels with each push) and dropout (masks sharded by worker).
TEST_F(TrainerPsTest, BspOnTwoWorkersMatchesOneProcessOnTheGlobalBatch) {
  Trainer single(config("single", "none"), {.progress = nullptr});
  single.run();
  const auto [got, result] = run_ps(config("ps", "ps"), 4);
  EXPECT_EQ(result.world_size, 2) << "two of the four processes train";
  EXPECT_EQ(result.steps, 2 * ((240 + 31) / 32));
  expect_near(got, parameter_values(single));
}

// A bsp job stopped after step 5 (a checkpoint of the Trainer and of every server for that step)
// and resumed gives the parameters of the job that never stopped: the servers' shards and their
// momentum come back exactly as they were after step 5. (A constant learning rate: max_steps
// would change a schedule's length.)
TEST_F(TrainerPsTest, BspResumedFromAStepCheckpointMatchesTheRunThatNeverStopped) {
  Config base = config("whole", "ps");
  base.optimizer.schedule = "constant";
  const auto [whole, whole_result] = run_ps(base, 4);
  Config stopped = base;
  stopped.train.run_dir = (dir_ / "stopped").string();
  stopped.train.max_steps = 5;
  EXPECT_EQ(run_ps(stopped, 4).second.steps, 5);
  EXPECT_TRUE(fs::exists(dir_ / "stopped" / "ps" / "server-1.step-5.ckpt"));
  stopped.train.max_steps = 0;
  const auto [resumed, resumed_result] = run_ps(stopped, 4, /*resume=*/true);
  EXPECT_EQ(resumed_result.steps, whole_result.steps);
  expect_near(resumed, whole);
}

TEST_F(TrainerPsTest, BspWithAdamMatchesOneProcess) {
  Trainer single(config("single", "none", "bsp", "adam"), {.progress = nullptr});
  single.run();
  expect_near(run_ps(config("ps", "ps", "bsp", "adam"), 3).first, parameter_values(single));
}

TEST_F(TrainerPsTest, AspAndSspTrain) {
  for (const char* mode : {"asp", "ssp"}) {
    const auto [params, result] = run_ps(config(std::string("ps_") + mode, "ps", mode), 4);
    EXPECT_EQ(result.steps, 2 * ((240 + 31) / 32)) << mode;
    EXPECT_LT(result.train_loss, 0.5) << mode << ": the classes are easy to separate";
  }
}

TEST_F(TrainerPsTest, NoWorkerLeftIsAConfigError) {
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    try {
      Trainer t(config("bad", "ps"), {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), "parallel.servers");
      EXPECT_NE(std::string(e.what()).find("leave no worker"), std::string::npos) << e.what();
    }
  });
}

TEST_F(TrainerPsTest, ClippingIsRefusedByName) {
  Config c = config("clip", "ps");
  c.optimizer.clip_grad_norm = 1.0;
  comm::testing::run_ranks(3, [&](comm::ProcessGroup& group) {
    // The servers' ranks: the worker fails before the address exchange.
    if (is_parameter_server(c, group.rank(), group.size())) return;
    try {
      Trainer t(c, {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), "optimizer.clip_grad_norm");
    }
  });
}

}  // namespace
}  // namespace tessera::train
