// ZeRO stage 3 through the Trainer: a transformer whose every layer is sharded over N = 2 and 4
// ranks, each training on its shard of the global batch, trains as one process does on the global
// batch (loss, test loss, and the parameters its checkpoint puts back together), with the head
// tied to the embedding (which then stays gathered through each step) or not; its checkpoints are
// one process's, so a run moves between one process and any N.
#include "split_model_test.h"

namespace tessera::train {
namespace {

using namespace split_model;  // NOLINT(google-build-using-namespace): the fixture's helpers

class TrainerZero3Test : public SplitModelTest {
 protected:
  std::vector<std::string> strategy() const override {
    return {"parallel.strategy=\"zero\"", "parallel.zero_stage=3"};
  }
};

// With clipping, and without (where a gradient of the wrong scale would hide under the clipping).
TEST_F(TrainerZero3Test, ShardedLayersTrainAsOneProcessWithATiedHead) {
  for (const char* clip : {"optimizer.clip_grad_norm=0.5", "optimizer.clip_grad_norm=0"}) {
    const Outcome whole = run(1, {clip});
    for (int n : {2, 4}) {
      SCOPED_TRACE(::testing::Message() << n << " ranks, " << clip);
      fs::remove_all(dir_ / "run");
      expect_same(run(n, {clip}), whole, 1e-5);
    }
    fs::remove_all(dir_ / "run");
  }
}

TEST_F(TrainerZero3Test, ShardedLayersTrainAsOneProcessWithAnUntiedHead) {
  const std::string head = "out = 24";
  const Outcome whole = run(1, {}, false, head);
  fs::remove_all(dir_ / "run");
  expect_same(run(2, {}, false, head), whole, 1e-5);
}

// The checkpoint holds the whole model and optimizer state (momentum): one process goes on from
// a split run, and a split run from one process's, as a straight run does.
TEST_F(TrainerZero3Test, CheckpointsMoveBetweenOneProcessAndAnyN) { expect_checkpoints_move(2, 4); }

}  // namespace
}  // namespace tessera::train
