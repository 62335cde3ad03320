// Sparse models on parameter servers (train_sparse): workers and servers as threads of one
// process, each with its rank of a Gloo group; bsp against one worker on the same global batches.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/train/parameter_server.h"
#include "tessera/train/sparse_trainer.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

// Records of 4 fields over a small vocabulary, labelled by a rule the model can learn.
void write_records(const fs::path& path, int count, uint64_t seed) {
  Generator gen(seed);
  std::ofstream out(path);
  for (int r = 0; r < count; ++r) {
    int64_t ids[4];
    int score = 0;
    for (int f = 0; f < 4; ++f) {
      const auto value = static_cast<int64_t>(gen.below(20));
      ids[f] = (int64_t{f + 1} << 33) + value + 1;
      score += value < 10 ? 1 : -1;
    }
    const bool positive = gen.uniform() < (score > 0 ? 0.85 : 0.15);
    out << (positive ? "+1" : "-1");
    for (const int64_t id : ids) out << " " << id << ":1";
    out << "\n";
  }
}

class SparseTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_sparse_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_records(dir_ / "train.svm", 2010, 1);  // the last global batch is partial
    write_records(dir_ / "test.svm", 200, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config config(const std::string& run, const std::vector<std::string>& more = {}) {
    std::vector<std::string> overrides{
        "data.train=\"libsvm:" + (dir_ / "train.svm").string() + "\"",
        "data.test=\"libsvm:" + (dir_ / "test.svm").string() + "\"",
        "train.run_dir=\"" + (dir_ / run).string() + "\""};
    overrides.insert(overrides.end(), more.begin(), more.end());
    return parse_config(R"(
[model]
type = "fm"
factors = 3
hash_rows = 1000
init_scale = 0.1
[data]
batch_size = 40
[optimizer]
name = "adagrad"
lr = 0.3
initial_accumulator = 0.01
[train]
epochs = 3
seed = 4
[parallel]
strategy = "ps"
timeout_s = 30
)",
                        "sparse.toml", overrides);
  }

  // Runs `ranks` processes as threads, the last `servers` of them serving; worker 0's result.
  SparseResult run(const Config& c, int ranks) {
    SparseResult result;
    std::mutex m;
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      if (is_parameter_server(c, group.rank(), group.size())) {
        serve_parameters(c, group, {.log = nullptr});
        return;
      }
      const SparseResult r = train_sparse(c, {.group = &group, .progress = nullptr});
      std::lock_guard lock(m);
      if (group.rank() == 0) result = r;
    });
    return result;
  }

  // Worker 0's test log loss after each epoch.
  std::vector<double> test_losses(const std::string& run) {
    std::vector<double> losses;
    std::ifstream in(dir_ / run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      losses.push_back(nlohmann::json::parse(line).at("test_logloss").get<double>());
    }
    return losses;
  }

  fs::path dir_;
};

// Each worker pushes the gradient of its half of the global batch, scaled as a part of the
// global mean, and the servers apply their sum once per step: the rows after every epoch, and so
// the test loss, are one worker's.
TEST_F(SparseTrainerTest, BspOnTwoWorkersMatchesOneWorkerOnTheGlobalBatch) {
  const SparseResult one = run(config("one", {"parallel.servers=1"}), 2);
  const SparseResult two = run(config("two", {"parallel.servers=2"}), 4);
  EXPECT_EQ(one.steps, 3 * 51);
  EXPECT_EQ(two.steps, 3 * 51);
  const std::vector<double> expected = test_losses("one");
  const std::vector<double> got = test_losses("two");
  ASSERT_EQ(expected.size(), 3u);
  ASSERT_EQ(got.size(), 3u);
  for (size_t e = 0; e < got.size(); ++e) EXPECT_NEAR(got[e], expected[e], 1e-6) << "epoch " << e;
  EXPECT_NEAR(two.test_auc, one.test_auc, 1e-6);
  EXPECT_GT(one.test_auc, 0.78) << "the rule is learnable";
  EXPECT_LT(expected.back(), expected.front()) << "the test loss falls";

  // The comparison can fail: other global batches give other rows.
  (void)run(config("other", {"parallel.servers=2", "data.batch_size=20"}), 4);
  EXPECT_GT(std::abs(test_losses("other").back() - expected.back()), 1e-4);
}

TEST_F(SparseTrainerTest, LogisticRegressionTrainsAsynchronously) {
  for (const char* mode : {"asp", "ssp"}) {
    const SparseResult r = run(config(mode, {"model.type=\"logistic\"", "parallel.servers=2",
                                             std::string("parallel.consistency=") + mode}),
                               4);
    EXPECT_EQ(r.steps, 3 * 51) << mode;
    EXPECT_GT(r.test_auc, 0.78) << mode;
    EXPECT_EQ(r.test_count, 200) << mode;
    EXPECT_GT(r.peak_rss_bytes, 0) << mode;
  }
}

TEST_F(SparseTrainerTest, ABatchThatDoesNotSplitOverTheWorkersIsAConfigError) {
  const Config c = config("bad", {"data.batch_size=41"});
  comm::testing::run_ranks(3, [&](comm::ProcessGroup& group) {
    if (is_parameter_server(c, group.rank(), group.size())) return;
    try {
      (void)train_sparse(c, {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), "data.batch_size");
      EXPECT_NE(std::string(e.what()).find("multiple of 2"), std::string::npos) << e.what();
    }
  });
}

TEST_F(SparseTrainerTest, SettingsASparseModelDoesNotHaveAreConfigErrors) {
  comm::testing::run_ranks(1, [&](comm::ProcessGroup& group) {
    try {
      (void)train_sparse(config("csv", {"data.train=\"csv:x.csv\"", "parallel.servers=0"}),
                         {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(e.key() == "data.train" || e.key() == "parallel.servers") << e.what();
    }
  });
  EXPECT_THROW((void)train_sparse(config("none"), {}), ConfigError) << "no group: no servers";
  try {
    (void)config("ddp", {"parallel.strategy=\"ddp\""});
    ADD_FAILURE() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "parallel.strategy");
  }
  try {
    (void)config("layers", {"model.layers=[{ type = \"relu\" }]"});
    ADD_FAILURE() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.layers");
  }
}

// A label a binary model cannot read stops the worker with the file and line; the server is told
// the worker is done and returns.
TEST_F(SparseTrainerTest, ALabelOtherThanZeroOrOneNamesFileAndLine) {
  std::ofstream(dir_ / "train.svm", std::ios::app) << "2 5:1\n";
  const Config c = config("label", {"data.batch_size=1000"});
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    if (is_parameter_server(c, group.rank(), group.size())) {
      serve_parameters(c, group, {.log = nullptr});
      return;
    }
    try {
      (void)train_sparse(c, {.group = &group, .progress = nullptr});
      ADD_FAILURE() << "expected FormatError";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("train.svm:2011: label 2"), std::string::npos)
          << e.what();
    }
  });
}

}  // namespace
}  // namespace tessera::train
