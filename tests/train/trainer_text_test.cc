// Character-level language modelling through the Trainer: text windows, the next-token loss and
// a transformer built from the config.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tessera/core/error.h"
#include "tessera/data/text_dataset.h"
#include "tessera/train/trainer.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class TrainerTextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_text_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Words in a fixed cycle: after the first letters of a word the rest is certain.
    std::ofstream out(dir_ / "text.txt");
    for (int i = 0; i < 300; ++i) out << "the cat sat on a mat. ";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config config(const std::vector<std::string>& extra = {}) {
    const std::string text = (dir_ / "text.txt").string();
    std::vector<std::string> overrides{"data.train=\"text:" + text + ":0-0.8\"",
                                       "data.test=\"text:" + text + ":0.8-1\"",
                                       "train.run_dir=\"" + (dir_ / "run").string() + "\""};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return parse_config(R"(
[model]
layers = [
  { type = "embedding", vocab = 16, dim = 16 },
  { type = "transformer_block", heads = 2, hidden = 32 },
  { type = "layernorm" },
  { type = "linear", out = 16 },
]
[data]
seq_len = 16
batch_size = 16
[optimizer]
name = "adam"
lr = 0.01
[train]
loss = "next_token"
epochs = 6
seed = 3
log_every = 1000
)",
                        (dir_ / "cfg.toml").string(), overrides);
  }

  fs::path dir_;
};

// 11 distinct characters: a model that knew nothing would score log(11) = 2.4 nats a character.
TEST_F(TrainerTextTest, ATransformerLearnsToPredictTheNextCharacter) {
  Trainer trainer(config(), {.progress = nullptr});
  const TrainResult r = trainer.run();
  EXPECT_LT(r.test.loss, 0.6) << "test loss per character";
  EXPECT_GT(r.test.accuracy, 0.8);
  EXPECT_EQ(r.test.count, 1320 / 16 * 16) << "every position of every test window is predicted";
}

// The head tied to the embedding: the token table is its weight, counted and trained once.
TEST_F(TrainerTextTest, AHeadTiedToTheEmbeddingUsesItsTableAndLearns) {
  const std::string tied =
      "model.layers=[{ type = \"embedding\", vocab = 16, dim = 16 }, "
      "{ type = \"transformer_block\", heads = 2, hidden = 32 }, "
      "{ type = \"layernorm\" }, { type = \"linear\", tie = true }]";
  Trainer trainer(config({tied}), {.progress = nullptr});
  const TrainResult r = trainer.run();
  Trainer untied(config(), {.progress = nullptr});
  EXPECT_EQ(trainer.model().parameter_count() + 16 * 16 + 16, untied.model().parameter_count())
      << "no weight and no bias of its own";
  EXPECT_LT(r.test.loss, 0.6);
  try {
    Trainer alone(config({"model.layers=[{ type = \"linear\", tie = true }]"}),
                  {.progress = nullptr});
    FAIL() << "a head tied to no embedding was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("needs an embedding layer"), std::string::npos)
        << e.what();
  }
}

TEST_F(TrainerTextTest, TextAndTheNextTokenLossGoTogether) {
  EXPECT_THROW(config({"train.loss=\"cross_entropy\""}), ConfigError);
  EXPECT_THROW(config({"data.seq_len=0"}), ConfigError);
  try {
    Trainer trainer(config({"model.layers=[{ type = \"embedding\", vocab = 16, dim = 8 }, "
                            "{ type = \"linear\", out = 5 }]"}),
                    {.progress = nullptr});
    (void)trainer.run();
    FAIL() << "a head narrower than the vocabulary was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("11 distinct bytes"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTextTest, ATestTextWithBytesTheTrainingTextLacksIsRefusedByOffset) {
  std::ofstream(dir_ / "other.txt") << "the cat sat on a mat! ";
  data::TextDataset train((dir_ / "text.txt").string(), 4);
  try {
    data::TextDataset test((dir_ / "other.txt").string(), 4, 0.0, 1.0, train.class_labels());
    FAIL() << "an unknown byte was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("other.txt at byte 20: byte 33"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(train.size(), (6600 - 1) / 4);
  std::vector<float> window(5);
  train.read_into(1, window);
  // Window 1 starts at byte 4: "cat s", token ids in the sorted vocabulary " .acehmnost".
  EXPECT_EQ(window, (std::vector<float>{3, 2, 10, 0, 9}));
}

}  // namespace
}  // namespace tessera::train
