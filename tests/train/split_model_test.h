// A fixture for the strategies that split a model over ranks (tensor, zero stage 3): a small
// transformer on a repeated sentence, trained on one process or on ranks as threads, and the
// whole model its last checkpoint holds, to compare the two.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "comm/run_ranks.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/saved_model.h"
#include "tessera/train/trainer.h"
#include "testing/relative_error.h"

namespace tessera::train {
namespace split_model {

namespace fs = std::filesystem;
using Params = std::map<std::string, std::vector<float>>;

struct Outcome {
  TrainResult result;
  Params params;            // the whole model's, from the last checkpoint
  int64_t local_bytes = 0;  // rank 0's parameters
};

inline Params params_of(nn::Module& model) {
  Params out;
  for (const auto& [name, p] : model.named_parameters()) out[name] = p.data().to_vector<float>();
  return out;
}

class SplitModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_split_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream out(dir_ / "text.txt");
    for (int i = 0; i < 100; ++i) out << "the cat sat on a mat. a dog ran to the cat. ";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `head`: the last layer's settings.
  Config config(const std::vector<std::string>& extra,
                const std::string& head = "tie = true") const {
    const std::string text = (dir_ / "text.txt").string();
    std::vector<std::string> overrides{"data.train=\"text:" + text + ":0-0.8\"",
                                       "data.test=\"text:" + text + ":0.8-1\"",
                                       "train.run_dir=\"" + (dir_ / "run").string() + "\""};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return parse_config(R"(
[model]
layers = [
  { type = "embedding", vocab = 24, dim = 16 },
  { type = "transformer_block", heads = 4, hidden = 32 },
  { type = "transformer_block", heads = 4, hidden = 32 },
  { type = "layernorm" },
  { type = "linear", )" + head +
                            R"( },
]
[data]
seq_len = 8
batch_size = 12
# SGD with momentum (see trainer_pipeline_test.cc for why not Adam).
[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
clip_grad_norm = 0.5
[train]
loss = "next_token"
epochs = 1
max_steps = 3
seed = 5
log_every = 1
)",
                        (dir_ / "cfg.toml").string(), overrides);
  }

  // The settings that make a run on several ranks split the model.
  virtual std::vector<std::string> strategy() const = 0;

  Outcome run(int ranks, std::vector<std::string> extra, bool resume = false,
              const std::string& head = "tie = true") {
    if (ranks > 1) {
      const std::vector<std::string> split = strategy();
      extra.insert(extra.end(), split.begin(), split.end());
    }
    Outcome out;
    std::mutex mu;
    auto train = [&](comm::ProcessGroup* group) {
      Trainer t(config(extra, head), {.group = group, .resume = resume, .progress = nullptr});
      const TrainResult r = t.run();
      if (group != nullptr && group->rank() != 0) return;
      std::lock_guard<std::mutex> lock(mu);
      out.result = r;
      for (const auto& [name, p] : t.model().named_parameters()) {
        out.local_bytes += static_cast<int64_t>(p.data().nbytes());
      }
    };
    if (ranks == 1) {
      train(nullptr);
    } else {
      comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) { train(&group); });
    }
    out.params = params_of(*load_saved_model(read_checkpoint(out.result.last_checkpoint)).model);
    return out;
  }

  // The checkpoint holds the whole model and optimizer state: one process goes on from a run split
  // over `first` ranks, and a run split over `second` from one process's, as a straight run does.
  void expect_checkpoints_move(int first, int second);

  fs::path dir_;
};

// The worst parameter's error.
inline double relative_error(const Params& a, const Params& b) {
  double worst = 0;
  for (const auto& [name, values] : b) {
    worst = std::max(worst, testing::relative_error(a.at(name), values));
  }
  return worst;
}

inline void expect_same(const Outcome& split, const Outcome& whole, double tolerance) {
  EXPECT_NEAR(split.result.train_loss, whole.result.train_loss,
              tolerance * whole.result.train_loss);
  EXPECT_NEAR(split.result.test.loss, whole.result.test.loss, tolerance * whole.result.test.loss);
  EXPECT_EQ(split.result.test.count, whole.result.test.count);
  ASSERT_EQ(split.params.size(), whole.params.size());
  EXPECT_LT(relative_error(split.params, whole.params), tolerance);
}

inline void SplitModelTest::expect_checkpoints_move(int first, int second) {
  const Outcome straight = run(1, {"train.max_steps=6"});
  fs::remove_all(dir_ / "run");
  (void)run(first, {});
  const Outcome resumed = run(1, {"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(resumed.params, straight.params), 1e-5);

  fs::remove_all(dir_ / "run");
  (void)run(1, {});
  const Outcome split = run(second, {"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(split.params, straight.params), 1e-5);
}

}  // namespace split_model
}  // namespace tessera::train
