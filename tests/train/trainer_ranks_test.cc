// Ranks never silently disagree: a resumed job loads rank 0's checkpoint on every rank, the data
// position it saved is the ranks' common one, and what rank 0 reports (losses, evaluation) covers
// every rank. Ranks run as threads over Gloo; tests/e2e/resume_test.cc runs real processes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>

#include "comm/run_ranks.h"
#include "tessera/core/random.h"
#include "tessera/core/serialize.h"
#include "tessera/data/distributed_sampler.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/data_source.h"
#include "tessera/train/model_builder.h"
#include "tessera/train/trainer.h"
#include "train/parameter_values.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using Values = std::vector<std::vector<float>>;

std::string test_name() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

class TrainerRanksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_trainer_ranks_" + std::to_string(::getpid()) + "_" + test_name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `rows` samples of two separable classes with 4 features; labels 0/1, or each row's own index
  // when `label_is_index` (so a batch's labels say which samples it holds).
  fs::path write_csv(const std::string& name, int rows, bool label_is_index = false) {
    Generator gen(5);
    fs::path path = dir_ / name;
    std::ofstream out(path);
    out << "a,b,c,d,label\n";
    for (int r = 0; r < rows; ++r) {
      const int label = r % 2;
      for (int f = 0; f < 4; ++f) out << (f % 2 == label ? 1.0 : -1.0) + 0.5 * gen.normal() << ",";
      out << (label_is_index ? r : label) << "\n";
    }
    return path;
  }

  // A DDP job on `train` (dropout and momentum: a rank that missed the checkpoint's random state
  // or optimizer state would train differently), metrics every step, run_dir under the test's.
  Config config(const fs::path& train, const std::string& run_dir,
                std::vector<std::string> overrides = {}) {
    overrides.insert(overrides.begin(),
                     {"data.train=\"csv:" + train.string() + "\"", "data.test=\"\"",
                      "train.run_dir=\"" + (dir_ / run_dir).string() + "\""});
    return parse_config(R"(
[model]
layers = [{ type = "linear", out = 8 }, { type = "tanh" }, { type = "dropout", p = 0.3 },
          { type = "linear", out = 2 }]
[data]
batch_size = 32
[optimizer]
lr = 0.05
momentum = 0.9
[train]
epochs = 2
seed = 3
log_every = 1
[parallel]
strategy = "ddp"
)",
                        "ranks.toml", overrides);
  }

  fs::path dir_;
};

// Runs `config(rank)` on n ranks; every rank's final parameters, in rank order.
std::vector<Values> train_on_ranks(int n, const std::function<Config(int rank)>& config,
                                   bool resume = false) {
  std::vector<Values> out(static_cast<size_t>(n));
  comm::testing::run_ranks(n, [&](comm::ProcessGroup& group) {
    Trainer t(config(group.rank()), {.group = &group, .resume = resume, .progress = nullptr});
    t.run();
    out[static_cast<size_t>(group.rank())] = parameter_values(t);
  });
  return out;
}

std::string rank_dir(const std::string& run, int rank) {
  return run + "/rank" + std::to_string(rank);
}

TEST_F(TrainerRanksTest, ResumeLoadsRankZerosCheckpointOnRanksWithRunDirectoriesOfTheirOwn) {
  const fs::path train = write_csv("train.csv", 240);
  const auto full = train_on_ranks(2, [&](int r) { return config(train, rank_dir("full", r)); });
  // Interrupted mid-epoch 2 (8 steps per epoch): only rank 0's directory gets checkpoints.
  (void)train_on_ranks(
      2, [&](int r) { return config(train, rank_dir("split", r), {"train.max_steps=11"}); });
  ASSERT_TRUE(fs::exists(dir_ / "split/rank0/checkpoints/step-0000000011.ckpt"));
  EXPECT_FALSE(fs::exists(dir_ / "split/rank1/checkpoints"));
  const auto resumed = train_on_ranks(
      2, [&](int r) { return config(train, rank_dir("split", r)); }, true);
  EXPECT_EQ(resumed[0], full[0]) << "rank 0 went on as if never interrupted";
  EXPECT_EQ(resumed[1], full[1]) << "so did rank 1, from rank 0's checkpoint";
  EXPECT_EQ(resumed[1], resumed[0]);
}

TEST_F(TrainerRanksTest, ARankThatCannotLoadTheCheckpointFailsEveryRankNamingItAndTheFile) {
  const fs::path train = write_csv("train.csv", 240);
  (void)train_on_ranks(
      2, [&](int r) { return config(train, rank_dir("run", r), {"train.max_steps=3"}); });
  // Rank 1 now builds Adam, which cannot take the SGD state the checkpoint holds.
  std::vector<std::string> errors(2);
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    std::vector<std::string> extra;
    if (group.rank() == 1) extra.push_back("optimizer.name=\"adam\"");
    try {
      Trainer t(config(train, rank_dir("run", group.rank()), extra),
                {.group = &group, .resume = true, .progress = nullptr});
      t.run();
    } catch (const FormatError& e) {
      errors[static_cast<size_t>(group.rank())] = e.what();
    }
  });
  const std::string file = (dir_ / "run/rank0/checkpoints/step-0000000003.ckpt").string();
  for (int r = 0; r < 2; ++r) {
    const std::string& e = errors[static_cast<size_t>(r)];
    EXPECT_NE(e.find("rank 1 could not load it"), std::string::npos) << "rank " << r << ": " << e;
    EXPECT_NE(e.find(file), std::string::npos) << "rank " << r << ": " << e;
    EXPECT_NE(e.find("expected 'adam'"), std::string::npos) << "rank " << r << ": " << e;
    EXPECT_EQ(e.find("rank 0 could not"), std::string::npos) << "rank " << r << ": " << e;
  }
}

TEST_F(TrainerRanksTest, CheckpointsWithEachRanksOwnSamplerPositionStillResumeExactly) {
  // Before the position became global, checkpoints held rank 0's count of its own samples.
  const fs::path train = write_csv("train.csv", 240);
  const auto full = train_on_ranks(2, [&](int r) { return config(train, rank_dir("full", r)); });
  (void)train_on_ranks(
      2, [&](int r) { return config(train, rank_dir("old", r), {"train.max_steps=11"}); });
  const std::string path = (dir_ / "old/rank0/checkpoints/step-0000000011.ckpt").string();
  Checkpoint c = read_checkpoint(path);
  std::istringstream in(c.section("data_position"));
  BinaryReader r(in, path);
  const int64_t epoch = r.read_i64();
  const int64_t global = r.read_i64();
  EXPECT_EQ(epoch, 1);
  EXPECT_EQ(global, 3 * 32) << "3 global batches into epoch 2";
  std::ostringstream old;
  BinaryWriter w(old);
  w.write_i64(epoch);
  w.write_i64(global / 2);
  c.sections.erase("data_position");
  c.sections["sampler"] = old.str();
  write_checkpoint(path, c);
  const auto resumed = train_on_ranks(
      2, [&](int r) { return config(train, rank_dir("old", r)); }, true);
  EXPECT_EQ(resumed[0], full[0]);
}

struct WorldChange {
  int64_t samples;
  int before, after;
  int64_t batch, steps;
  bool drop_last;
};

class MidEpochResumeTest : public TrainerRanksTest,
                           public ::testing::WithParamInterface<WorldChange> {};

TEST_P(MidEpochResumeTest, TheEpochSeesExactlyTheSamplesOneUninterruptedEpochSees) {
  const WorldChange c = GetParam();
  const fs::path train = write_csv("train.csv", static_cast<int>(c.samples), true);
  // One class per sample: the labels of a batch are the indices of its samples.
  auto job = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(),
                 {"data.batch_size=" + std::to_string(c.batch), "train.epochs=1",
                  std::string("data.drop_last=") + (c.drop_last ? "true" : "false"),
                  "model.layers=[{ type = \"linear\", out = " + std::to_string(c.samples) + " }]"});
    return config(train, "run", extra);
  };
  std::mutex m;
  std::vector<int64_t> seen;
  auto record = [&](const data::Batch& b) {
    std::lock_guard lock(m);
    for (int64_t i : b.y.to_vector<int64_t>()) seen.push_back(i);
  };
  comm::testing::run_ranks(c.before, [&](comm::ProcessGroup& group) {
    Trainer t(job({"train.max_steps=" + std::to_string(c.steps)}),
              {.group = &group, .progress = nullptr, .on_batch = record});
    EXPECT_EQ(t.run().steps, c.steps);
  });
  ASSERT_EQ(std::ssize(seen), c.steps * c.batch);
  const int64_t per_epoch = c.drop_last ? c.samples / c.batch : (c.samples + c.batch - 1) / c.batch;
  comm::testing::run_ranks(c.after, [&](comm::ProcessGroup& group) {
    Trainer t(job({}), {.group = &group, .resume = true, .progress = nullptr, .on_batch = record});
    EXPECT_EQ(t.run().steps, per_epoch);
  });

  data::DistributedSampler one(c.samples, 0, 1, {.seed = 3});
  const std::vector<int64_t> order(one.indices().begin(), one.indices().end());
  std::vector<int64_t> expected;
  if (c.drop_last) {
    // Whole global batches only, as in an uninterrupted epoch: each of them once.
    expected.assign(order.begin(), order.begin() + c.samples / c.batch * c.batch);
  } else {
    // Every sample once, and the padding that evens out the ranks' shares of what was left on
    // resuming: the first samples of the epoch's order again.
    expected = order;
    const int64_t left = c.samples - c.steps * c.batch;
    const int64_t padding = (left + c.after - 1) / c.after * c.after - left;
    expected.insert(expected.end(), order.begin(), order.begin() + padding);
  }
  std::sort(seen.begin(), seen.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(seen, expected);
}

INSTANTIATE_TEST_SUITE_P(
    WorldSizes, MidEpochResumeTest,
    ::testing::Values(WorldChange{24, 2, 3, 6, 2, false}, WorldChange{25, 2, 3, 6, 2, false},
                      WorldChange{24, 4, 2, 4, 3, false}, WorldChange{23, 4, 2, 4, 3, false},
                      WorldChange{25, 2, 3, 6, 2, true}, WorldChange{23, 4, 2, 4, 3, true}),
    [](const auto& info) {
      const WorldChange& c = info.param;
      return "N" + std::to_string(c.samples) + "_" + std::to_string(c.before) + "to" +
             std::to_string(c.after) + (c.drop_last ? "_drop_last" : "_padded");
    });

// The "loss" of each metrics line, in order.
std::vector<double> logged_losses(const fs::path& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto at = line.find("\"loss\":");
    if (at != std::string::npos) out.push_back(std::stod(line.substr(at + 7)));
  }
  return out;
}

TEST_F(TrainerRanksTest, ReportedLossesAreTheMeanOverTheRanks) {
  const fs::path train = write_csv("train.csv", 240);
  Trainer single(config(train, "single", {"parallel.strategy=\"none\""}), {.progress = nullptr});
  const double single_loss = single.run().train_loss;
  std::vector<double> rank_losses(2);
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Trainer t(config(train, "ddp"), {.group = &group, .progress = nullptr});
    rank_losses[static_cast<size_t>(group.rank())] = t.run().train_loss;
  });
  // Two ranks on half batches report what one process on the whole batch reports.
  EXPECT_NEAR(rank_losses[0], single_loss, 1e-5 * single_loss);
  EXPECT_EQ(rank_losses[1], rank_losses[0]);
  const auto expected = logged_losses(dir_ / "single" / "metrics.jsonl");
  const auto got = logged_losses(dir_ / "ddp" / "metrics.jsonl");
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_EQ(got.size(), 16u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-5 * expected[i]) << "step " << i + 1;
  }
  // Each line lists each rank's peak tensor bytes: at least its parameters' and gradients'.
  std::ifstream in(dir_ / "ddp" / "metrics.jsonl");
  std::string first;
  std::getline(in, first);
  std::smatch peaks;
  ASSERT_TRUE(std::regex_search(first, peaks, std::regex(R"("peak_tensor_bytes":\[(\d+),(\d+)\])")))
      << first;
  const int64_t parameter_bytes = 4 * (4 * 8 + 8 + 8 * 2 + 2);
  EXPECT_GE(std::stoll(peaks[1]), 2 * parameter_bytes);
  EXPECT_GE(std::stoll(peaks[2]), 2 * parameter_bytes);
}

class SyncBatchnormTest : public TrainerRanksTest,
                          public ::testing::WithParamInterface<std::string> {};

TEST_P(SyncBatchnormTest, RanksTrainAsOneProcessOnTheGlobalBatch) {
  const fs::path train = write_csv("train.csv", 240);
  auto job = [&](const std::string& run, const std::string& strategy) {
    return config(train, run,
                  {"model.layers=[{ type = \"linear\", out = 8 }, { type = \"batchnorm\" }, "
                   "{ type = \"tanh\" }, { type = \"linear\", out = 2 }]",
                   "parallel.strategy=\"" + strategy + "\"", "parallel.sync_batchnorm=true",
                   "parallel.zero_stage=2"});
  };
  Trainer single(job("single", "none"), {.progress = nullptr});
  single.run();
  // Parameters, then the batchnorm layer's running statistics.
  auto state = [](Trainer& t) {
    Values out = parameter_values(t);
    for (auto& [name, b] : t.model().named_buffers()) out.push_back(b.to_vector<float>());
    return out;
  };
  const Values expected = state(single);
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Trainer t(job("ranks", GetParam()), {.group = &group, .progress = nullptr});
    t.run();
    const Values got = state(t);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      for (size_t k = 0; k < got[i].size(); ++k) {
        EXPECT_NEAR(got[i][k], expected[i][k], 1e-5 * (1 + std::abs(expected[i][k])))
            << "rank " << group.rank() << ", entry " << i << "," << k;
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Strategies, SyncBatchnormTest, ::testing::Values("ddp", "zero"));

TEST_F(TrainerRanksTest, ShardedEvaluationEqualsOneProcess) {
  // 101 samples: 3 ranks get 34, 34 and 33, with no padding counted twice.
  const fs::path test = write_csv("test.csv", 101);
  Config c = config(test, "eval");
  auto dataset = open_dataset("csv:" + test.string(), c, "data.test");
  Generator init(1), dropout(2);
  auto model = build_model(c, dataset->sample_shape(), init, dropout);
  model->train();  // evaluation switches to eval mode and back
  const EvalResult one = evaluate(*model, *dataset, 16, 2);
  ASSERT_EQ(one.count, 101);
  comm::testing::run_ranks(3, [&](comm::ProcessGroup& group) {
    auto data = open_dataset("csv:" + test.string(), c, "data.test");
    Generator rank_init(1), rank_dropout(2);
    auto same = build_model(c, data->sample_shape(), rank_init, rank_dropout);
    const EvalResult sharded = evaluate_sharded(*same, *data, 16, 2, group);
    EXPECT_EQ(sharded.count, one.count);
    EXPECT_EQ(sharded.confusion, one.confusion);
    EXPECT_EQ(sharded.accuracy, one.accuracy);
    EXPECT_NEAR(sharded.loss, one.loss, 1e-6 * one.loss);
    EXPECT_TRUE(same->is_training());
  });
  EXPECT_TRUE(model->is_training());
}

}  // namespace
}  // namespace tessera::train
