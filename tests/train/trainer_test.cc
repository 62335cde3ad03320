#include "tessera/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/model_builder.h"
#include "tessera/train/saved_model.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

// A small 3-class problem in CSV: the class is which of three feature groups is largest.
class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_trainer_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_csv(dir_ / "train.csv", 300, 1);
    write_csv(dir_ / "test.csv", 90, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void write_csv(const fs::path& path, int rows, uint64_t seed) {
    Generator gen(seed);
    std::ofstream out(path);
    out << "f0,f1,f2,f3,f4,f5,label\n";
    for (int r = 0; r < rows; ++r) {
      int label = r % 3;
      for (int f = 0; f < 6; ++f) out << (f / 2 == label ? 1.0 : 0.0) + 0.3 * gen.normal() << ",";
      out << label << "\n";
    }
  }

  Config config(const std::string& run, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> overrides{"data.train=\"csv:" + (dir_ / "train.csv").string() + "\"",
                                       "data.test=\"csv:" + (dir_ / "test.csv").string() + "\"",
                                       "train.run_dir=\"" + (dir_ / run).string() + "\""};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return parse_config(R"(
[model]
layers = [
  { type = "linear", out = 16 }, { type = "relu" }, { type = "dropout", p = 0.1 },
  { type = "linear", out = 3 },
]
[data]
batch_size = 32
[optimizer]
lr = 0.1
momentum = 0.9
[train]
epochs = 3
seed = 7
checkpoint_every = 5
keep_checkpoints = 10
log_every = 4
)",
                        (dir_ / "cfg.toml").string(), overrides);
  }

  static std::vector<std::vector<float>> params(Trainer& t) {
    std::vector<std::vector<float>> out;
    for (auto& p : t.model().parameters()) out.push_back(p.data().to_vector<float>());
    return out;
  }

  fs::path dir_;
};

TEST_F(TrainerTest, LearnsTheProblemAndWritesMetricsAndCheckpoints) {
  Trainer t(config("run"), {.progress = nullptr});
  TrainResult r = t.run();
  EXPECT_EQ(r.epochs, 3);
  EXPECT_EQ(r.steps, 3 * 10);  // ceil(300 / 32) = 10 batches per epoch
  EXPECT_GT(r.test.accuracy, 0.9);
  EXPECT_EQ(r.test.count, 90);
  std::ifstream metrics(dir_ / "run" / "metrics.jsonl");
  std::string line;
  int lines = 0, eval_lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    eval_lines += line.find("test_accuracy") != std::string::npos;
  }
  EXPECT_EQ(eval_lines, 3);
  EXPECT_EQ(lines, 3 + 30 / 4);
  EXPECT_FALSE(r.last_checkpoint.empty());
  SavedModel saved = load_saved_model(read_checkpoint(r.last_checkpoint));
  EXPECT_EQ(saved.classes, 3);
  EXPECT_EQ(saved.sample_shape, (Shape{6}));
}

TEST_F(TrainerTest, ResumedRunIsBitIdenticalToUninterruptedOne) {
  Trainer full(config("full"), {.progress = nullptr});
  full.run();
  {
    // "Crash" after 17 steps: mid-epoch 2, two steps after the checkpoint at step 15.
    Trainer first(config("resumed", {"train.max_steps=17"}), {.progress = nullptr});
    first.run();
  }
  // Drop the checkpoint written when max_steps stopped the run: resume from step 15.
  fs::remove(dir_ / "resumed" / "checkpoints" / "step-0000000017.ckpt");
  Trainer second(config("resumed"), {.resume = true, .progress = nullptr});
  TrainResult r = second.run();
  EXPECT_EQ(r.steps, 30);
  EXPECT_EQ(params(second), params(full));
}

TEST_F(TrainerTest, ResumeSkipsCorruptNewestCheckpointAndStaysExact) {
  Trainer full(config("full"), {.progress = nullptr});
  full.run();
  {
    Trainer first(config("resumed", {"train.max_steps=12"}), {.progress = nullptr});
    first.run();
  }
  // Corrupt the newest (step 12): resume must fall back to step 10 and still match.
  fs::path newest = dir_ / "resumed" / "checkpoints" / "step-0000000012.ckpt";
  ASSERT_TRUE(fs::exists(newest));
  {
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  Trainer second(config("resumed"), {.resume = true, .progress = nullptr});
  second.run();
  EXPECT_EQ(params(second), params(full));
}

TEST_F(TrainerTest, MissingDataFileNamesIt) {
  try {
    Trainer t(config("run", {"data.train=\"csv:" + (dir_ / "nope.csv").string() + "\""}),
              {.progress = nullptr});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.csv"), std::string::npos) << e.what();
  }
}

TEST(ModelBuilder, InfersSizesAndRejectsMisfits) {
  Generator gen(1);
  Config c = parse_config(R"(
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 3, padding = 1 }, { type = "maxpool2d", kernel = 2 },
  { type = "flatten" }, { type = "linear", out = 5 },
]
)",
                          "cnn.toml");
  Shape out;
  auto model = build_model(c, {1, 8, 8}, gen, gen, &out);
  EXPECT_EQ(out, (Shape{5}));
  EXPECT_EQ(model->named_parameters()[2].second.shape(), (Shape{5, 4 * 4 * 4}));

  Config no_flatten =
      parse_config("[model]\nlayers = [{ type = \"linear\", out = 5 }]\n", "m.toml");
  try {
    (void)build_model(no_flatten, {1, 8, 8}, gen, gen);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.layers[0]");
    EXPECT_EQ(e.line(), 2);
    EXPECT_NE(std::string(e.what()).find("flatten"), std::string::npos) << e.what();
  }
  Config typo = parse_config("[model]\nlayers = [{ type = \"linear\", outs = 5 }]\n", "m.toml");
  try {
    (void)build_model(typo, {6}, gen, gen);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("missing required setting 'out'"), std::string::npos)
        << e.what();
  }
  Config unknown = parse_config("[model]\nlayers = [{ type = \"lstm\" }]\n", "m.toml");
  EXPECT_THROW((void)build_model(unknown, {6}, gen, gen), ConfigError);
}

}  // namespace
}  // namespace tessera::train
