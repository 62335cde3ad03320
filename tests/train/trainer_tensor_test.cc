// Strategy "tensor" through the Trainer: a transformer whose embedding, blocks and head are split
// over T = 2 and 4 ranks trains as one process does (loss, test loss, and the parameters its
// checkpoint puts back together), with the head tied to the embedding or not; its checkpoints are
// one process's, so a run moves between one process and any T; bad settings name their key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/saved_model.h"
#include "tessera/train/trainer.h"
#include "testing/relative_error.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using Params = std::map<std::string, std::vector<float>>;

struct Outcome {
  TrainResult result;
  Params params;            // the whole model's, from the last checkpoint
  int64_t local_bytes = 0;  // rank 0's parameters
};

Params params_of(nn::Module& model) {
  Params out;
  for (const auto& [name, p] : model.named_parameters()) out[name] = p.data().to_vector<float>();
  return out;
}

class TrainerTensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_tensor_" + std::to_string(::getpid()) + "_" +
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

  Outcome run(int ranks, std::vector<std::string> extra, bool resume = false,
              const std::string& head = "tie = true") {
    if (ranks > 1) extra.push_back("parallel.strategy=\"tensor\"");
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

  fs::path dir_;
};

// The worst parameter's error.
double relative_error(const Params& a, const Params& b) {
  double worst = 0;
  for (const auto& [name, values] : b) {
    worst = std::max(worst, testing::relative_error(a.at(name), values));
  }
  return worst;
}

void expect_same(const Outcome& split, const Outcome& whole, double tolerance) {
  EXPECT_NEAR(split.result.train_loss, whole.result.train_loss,
              tolerance * whole.result.train_loss);
  EXPECT_NEAR(split.result.test.loss, whole.result.test.loss, tolerance * whole.result.test.loss);
  EXPECT_EQ(split.result.test.count, whole.result.test.count);
  ASSERT_EQ(split.params.size(), whole.params.size());
  EXPECT_LT(relative_error(split.params, whole.params), tolerance);
}

TEST_F(TrainerTensorTest, SplitLayersTrainAsOneProcessWithATiedHead) {
  const Outcome whole = run(1, {});
  for (int t : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << "tp " << t);
    fs::remove_all(dir_ / "run");
    const Outcome split = run(t, {});
    expect_same(split, whole, 1e-5);
    // Every split parameter is 1/T per rank; the layer norms and positions are whole.
    EXPECT_LT(split.local_bytes, whole.local_bytes / t + whole.local_bytes / 5);
  }
}

// A head of its own: its outputs (the vocabulary) split, its logits never whole in training.
TEST_F(TrainerTensorTest, SplitLayersTrainAsOneProcessWithAnUntiedHead) {
  const std::string head = "out = 24";
  const Outcome whole = run(1, {}, false, head);
  fs::remove_all(dir_ / "run");
  expect_same(run(2, {}, false, head), whole, 1e-5);
}

// The checkpoint holds the whole model and optimizer state (momentum): one process goes on from
// a split run, and a split run from one process's, as a straight run does.
TEST_F(TrainerTensorTest, CheckpointsMoveBetweenOneProcessAndAnyTp) {
  const Outcome straight = run(1, {"train.max_steps=6"});
  fs::remove_all(dir_ / "run");
  (void)run(2, {});
  const Outcome resumed = run(1, {"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(resumed.params, straight.params), 1e-5);

  fs::remove_all(dir_ / "run");
  (void)run(1, {});
  const Outcome split = run(4, {"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(split.params, straight.params), 1e-5);
}

TEST_F(TrainerTensorTest, BadSettingsNameTheirKey) {
  auto message = [&](int ranks, const std::vector<std::string>& extra, const std::string& head) {
    std::string what;
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      try {
        std::vector<std::string> all = extra;
        all.push_back("parallel.strategy=\"tensor\"");
        Trainer t(config(all, head), {.group = &group, .progress = nullptr});
      } catch (const ConfigError& e) {
        if (group.rank() == 0) what = e.what();
      }
    });
    return what;
  };
  EXPECT_NE(message(2, {"parallel.tp=3"}, "tie = true").find("parallel.tp"), std::string::npos);
  // 4 heads do not divide among 3 ranks.
  EXPECT_NE(message(3, {}, "tie = true").find("model.layers["), std::string::npos);
  EXPECT_NE(message(2, {"train.label_smoothing=0.1"}, "tie = true").find("train.label_smoothing"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::train
