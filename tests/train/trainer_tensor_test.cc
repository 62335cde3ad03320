// Strategy "tensor" through the Trainer: a transformer whose embedding, blocks and head are split
// over T = 2 and 4 ranks trains as one process does (loss, test loss, and the parameters its
// checkpoint puts back together), with the head tied to the embedding or not; its checkpoints are
// one process's, so a run moves between one process and any T; bad settings name their key.
#include "split_model_test.h"
#include "tessera/core/error.h"

namespace tessera::train {
namespace {

using namespace split_model;  // NOLINT(google-build-using-namespace): the fixture's helpers

class TrainerTensorTest : public SplitModelTest {
 protected:
  std::vector<std::string> strategy() const override { return {"parallel.strategy=\"tensor\""}; }
};

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
  expect_checkpoints_move(2, 4);
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
