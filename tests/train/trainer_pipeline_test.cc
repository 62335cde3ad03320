// Strategy "pipeline" through the Trainer: a transformer with a head tied to its embedding, cut
// into 2 and 3 stages, trains as one process does (loss, test loss, parameters); its checkpoints
// are one process's, so a run resumes on one process or on another cut; bad settings name their
// key.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/data_source.h"
#include "tessera/train/saved_model.h"
#include "tessera/train/trainer.h"
#include "testing/relative_error.h"

namespace tessera::train {
namespace trainer_pipeline_test {

namespace fs = std::filesystem;
using Params = std::map<std::string, std::vector<float>>;

struct Outcome {
  TrainResult result;
  Params params;  // every stage's, by name in the whole model
};

class TrainerPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_pipeline_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream out(dir_ / "text.txt");
    for (int i = 0; i < 100; ++i) out << "the cat sat on a mat. a dog ran to the cat. ";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config config(const std::vector<std::string>& extra) {
    const std::string text = (dir_ / "text.txt").string();
    std::vector<std::string> overrides{"data.train=\"text:" + text + ":0-0.8\"",
                                       "data.test=\"text:" + text + ":0.8-1\"",
                                       "train.run_dir=\"" + (dir_ / "run").string() + "\""};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return parse_config(R"(
[model]
layers = [
  { type = "embedding", vocab = 24, dim = 16 },
  { type = "transformer_block", heads = 2, hidden = 32 },
  { type = "transformer_block", heads = 2, hidden = 32 },
  { type = "transformer_block", heads = 2, hidden = 32 },
  { type = "layernorm" },
  { type = "linear", tie = true },
]
[data]
seq_len = 8
batch_size = 12
# SGD, not Adam: Adam divides each gradient by its own size, so a gradient that is zero but for
# rounding (the attention's key bias: softmax ignores a shift shared by every key) moves by the
# learning rate in a direction the rounding picks, however the sums are ordered.
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
[parallel]
micro_batches = 4
)",
                        (dir_ / "cfg.toml").string(), overrides);
  }

  static Params params_of(nn::Module& model) {
    Params out;
    for (const auto& [name, p] : model.named_parameters()) out[name] = p.data().to_vector<float>();
    return out;
  }

  Outcome one_process(const std::vector<std::string>& extra, bool resume = false) {
    Trainer t(config(extra), {.resume = resume, .progress = nullptr});
    Outcome r{t.run(), {}};
    r.params = params_of(t.model());
    return r;
  }

  Outcome pipeline(int stages, std::vector<std::string> extra, bool resume = false) {
    extra.push_back("parallel.strategy=\"pipeline\"");
    return ranks(stages, extra, resume);
  }

  // Every rank's parameters: a hybrid job's pipelines hold the same values.
  Outcome ranks(int n, const std::vector<std::string>& extra, bool resume = false) {
    Outcome run;
    std::mutex mu;
    comm::testing::run_ranks(n, [&](comm::ProcessGroup& group) {
      Trainer t(config(extra), {.group = &group, .resume = resume, .progress = nullptr});
      const TrainResult r = t.run();
      std::lock_guard<std::mutex> lock(mu);
      if (group.rank() == 0) run.result = r;
      for (auto& [name, values] : params_of(t.model())) run.params[name] = values;
    });
    return run;
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

void expect_same(const Outcome& pipelined, const Outcome& whole, double tolerance) {
  EXPECT_NEAR(pipelined.result.train_loss, whole.result.train_loss,
              tolerance * whole.result.train_loss);
  EXPECT_NEAR(pipelined.result.test.loss, whole.result.test.loss,
              tolerance * whole.result.test.loss);
  EXPECT_EQ(pipelined.result.test.count, whole.result.test.count);
  ASSERT_EQ(pipelined.params.size(), whole.params.size());
  EXPECT_LT(relative_error(pipelined.params, whole.params), tolerance);
}

TEST_F(TrainerPipelineTest, StagesTrainAsOneProcessWithATiedHeadAndClipping) {
  const Outcome whole = one_process({});
  for (int stages : {2, 3}) {
    for (const char* schedule : {"gpipe", "1f1b"}) {
      for (const char* recompute : {"false", "true"}) {
        SCOPED_TRACE(::testing::Message()
                     << stages << " stages, " << schedule << ", recompute " << recompute);
        fs::remove_all(dir_ / "run");
        const Outcome r = pipeline(stages, {std::string("parallel.schedule=\"") + schedule + "\"",
                                            std::string("parallel.recompute=") + recompute});
        expect_same(r, whole, 1e-5);
      }
    }
  }
}

TEST_F(TrainerPipelineTest, GivenCutsPlaceTheStages) {
  const Outcome whole = one_process({});
  const Outcome r = pipeline(3, {"parallel.stage_cuts=[1, 5]"});
  expect_same(r, whole, 1e-5);
}

// dp pipelines side by side, each on its shard of the global batch, their gradients averaged.
// Without clipping, which would hide a gradient of the wrong scale.
TEST_F(TrainerPipelineTest, HybridDataParallelPipelinesTrainAsOneProcess) {
  const Outcome whole = one_process({"optimizer.clip_grad_norm=0"});
  for (const auto& [n, pp] : std::vector<std::pair<int, int>>{{4, 2}, {6, 2}, {6, 3}}) {
    SCOPED_TRACE(::testing::Message() << "dp " << n / pp << " x pp " << pp);
    fs::remove_all(dir_ / "run");
    const Outcome r = ranks(n, {"parallel.strategy=\"hybrid\"", "parallel.pp=" + std::to_string(pp),
                                "parallel.micro_batches=2", "optimizer.clip_grad_norm=0"});
    expect_same(r, whole, 1e-5);
  }
}

// Meshes with tensor parallelism inside each stage: dp x pp x tp processes, the head (tied to the
// embedding on another stage) split too. Each rank holds parts, so the parameters compared are
// the ones the checkpoint puts together. With clipping on one pipeline, without on two (where a
// gradient of the wrong scale would hide under the clipping).
TEST_F(TrainerPipelineTest, MeshesWithTensorParallelStagesTrainAsOneProcess) {
  for (const bool clip : {true, false}) {
    const std::string norm = clip ? "optimizer.clip_grad_norm=0.5" : "optimizer.clip_grad_norm=0";
    const Outcome whole = one_process({norm});
    const auto meshes = clip ? std::vector<std::pair<int, int>>{{4, 2}, {6, 3}}
                             : std::vector<std::pair<int, int>>{{8, 2}};
    for (const auto& [n, pp] : meshes) {
      SCOPED_TRACE(::testing::Message() << n << " ranks, pp " << pp << ", tp 2, clip " << clip);
      fs::remove_all(dir_ / "run");
      Outcome r = ranks(n, {"parallel.strategy=\"hybrid\"", "parallel.pp=" + std::to_string(pp),
                            "parallel.tp=2", "parallel.micro_batches=2", norm});
      r.params = params_of(*load_saved_model(read_checkpoint(r.result.last_checkpoint)).model);
      expect_same(r, whole, 1e-5);
    }
  }
}

// A mesh's checkpoint is one process's too, and one process's resumes as a mesh.
TEST_F(TrainerPipelineTest, CheckpointsMoveBetweenOneProcessAndAMesh) {
  const Outcome straight = one_process({"train.max_steps=6"});
  const std::vector<std::string> mesh{"parallel.strategy=\"hybrid\"", "parallel.pp=2",
                                      "parallel.tp=2"};
  fs::remove_all(dir_ / "run");
  (void)ranks(4, mesh);
  const Outcome resumed = one_process({"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(resumed.params, straight.params), 1e-5);

  fs::remove_all(dir_ / "run");
  (void)one_process({});
  std::vector<std::string> longer = mesh;
  longer.push_back("train.max_steps=6");
  Outcome split = ranks(4, longer, /*resume=*/true);
  split.params = params_of(*load_saved_model(read_checkpoint(split.result.last_checkpoint)).model);
  EXPECT_LT(relative_error(split.params, straight.params), 1e-5);
}

// A pipeline's checkpoint is one process's: one process goes on from it, and a pipeline cut
// another way goes on from one process's.
TEST_F(TrainerPipelineTest, CheckpointsMoveBetweenOneProcessAndAnyCut) {
  const Outcome straight = one_process({"train.max_steps=6"});
  fs::remove_all(dir_ / "run");
  (void)pipeline(2, {});
  const Outcome resumed = one_process({"train.max_steps=6"}, /*resume=*/true);
  EXPECT_LT(relative_error(resumed.params, straight.params), 1e-5);

  fs::remove_all(dir_ / "run");
  (void)one_process({});
  const Outcome split = pipeline(3, {"train.max_steps=6", "parallel.stage_cuts=[2, 3]"}, true);
  EXPECT_LT(relative_error(split.params, straight.params), 1e-5);
}

// What `tessera eval` does: the pipeline's checkpoint, loaded whole into one process, scores the
// test text as the stages did.
TEST_F(TrainerPipelineTest, OneProcessEvaluatesAPipelinesCheckpoint) {
  const Outcome r = pipeline(2, {});
  const SavedModel saved = load_saved_model(read_checkpoint(r.result.last_checkpoint));
  ASSERT_TRUE(saved.next_token);
  const Config c = config({});
  const DataLayout layout{saved.sample_shape, saved.class_labels};
  auto test = open_dataset(c.data.test, saved.config, "data.test", &layout);
  const EvalResult e = evaluate(*saved.model, *test, 64, saved.classes, true);
  EXPECT_EQ(e.count, r.result.test.count);
  EXPECT_NEAR(e.loss, r.result.test.loss, 1e-5 * r.result.test.loss);
}

TEST_F(TrainerPipelineTest, BadSettingsNameTheirKey) {
  auto message = [&](int stages, const std::vector<std::string>& extra) {
    std::string what;
    comm::testing::run_ranks(stages, [&](comm::ProcessGroup& group) {
      try {
        std::vector<std::string> all{"parallel.strategy=\"pipeline\""};
        all.insert(all.end(), extra.begin(), extra.end());
        Trainer t(config(all), {.group = &group, .progress = nullptr});
      } catch (const ConfigError& e) {
        if (group.rank() == 0) what = e.what();
      }
    });
    return what;
  };
  EXPECT_NE(message(2, {"parallel.pp=3"}).find("parallel.pp"), std::string::npos);
  EXPECT_NE(message(2, {"parallel.stage_cuts=[1, 2]"}).find("parallel.stage_cuts"),
            std::string::npos);
  EXPECT_NE(message(2, {"parallel.stage_cuts=[9]"}).find("parallel.stage_cuts"), std::string::npos);
  EXPECT_NE(message(2, {"parallel.micro_batches=13"}).find("parallel.micro_batches"),
            std::string::npos);
  EXPECT_NE(message(2, {"parallel.tp=2"}).find("parallel.tp"), std::string::npos);
  EXPECT_NE(message(3, {"parallel.strategy=\"hybrid\"", "parallel.tp=2"}).find("parallel.pp"),
            std::string::npos);
  EXPECT_THROW((void)config({"parallel.schedule=\"zigzag\""}), ConfigError);
}

}  // namespace trainer_pipeline_test
}  // namespace tessera::train
