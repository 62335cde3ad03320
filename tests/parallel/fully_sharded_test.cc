// ZeRO stage 3's schedule: a rank keeps 1/N of each unit's parameters; while unit i computes,
// forward and backward, unit i is gathered, the unit it needs next is already being gathered
// (prefetch), and the units it is done with are freed; after backward no unit is gathered and each
// shard holds its gradient. The equivalence to one process is tested through the Trainer
// (tests/train/trainer_zero3_test.cc).
#include "tessera/parallel/fully_sharded.h"

#include <gtest/gtest.h>

#include <mutex>

#include "../comm/run_ranks.h"
#include "tessera/autograd/functions.h"
#include "tessera/autograd/node.h"
#include "tessera/nn/linear.h"

namespace tessera::parallel {
namespace {

using comm::testing::run_ranks;

constexpr int kUnits = 4;
constexpr int64_t kWidth = 10;  // 110 values a unit: not a multiple of 4, so shards are padded

// Which units' memory exists: 'g' gathered (or being gathered), '-' freed.
std::string gathered(const std::vector<std::shared_ptr<nn::Linear>>& units) {
  std::string out;
  for (const auto& u : units) out += u->weight().data().storage()->released() ? '-' : 'g';
  return out;
}

// A unit: a Linear layer, and a note of what is gathered when it computes, forward and backward.
class ProbedLinear : public nn::Module {
 public:
  ProbedLinear(Generator& gen, const std::vector<std::shared_ptr<nn::Linear>>& all,
               std::vector<std::string>& log)
      : linear_(register_module("linear", std::make_shared<nn::Linear>(kWidth, kWidth, gen))),
        all_(all),
        log_(log) {}
  Variable forward(const Variable& x) override {
    log_.push_back("forward " + gathered(all_));
    const Variable y = linear_->forward(x);
    return autograd::make_result(y.data(), "probe", {y},
                                 [this](const Tensor& grad, const std::vector<bool>&) {
                                   log_.push_back("backward " + gathered(all_));
                                   return std::vector<Tensor>{grad};
                                 });
  }
  std::string name() const override { return "ProbedLinear"; }
  const std::shared_ptr<nn::Linear>& linear() const { return linear_; }

 private:
  std::shared_ptr<nn::Linear> linear_;
  const std::vector<std::shared_ptr<nn::Linear>>& all_;
  std::vector<std::string>& log_;
};

TEST(FullyShardedModel, GathersEachUnitJustInTimePrefetchesTheNextAndFreesTheRest) {
  for (int ranks : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << ranks << " ranks");
    std::vector<std::string> rank0_log;
    std::mutex mu;
    run_ranks(ranks, [&](comm::ProcessGroup& group) {
      Generator gen(3);
      std::vector<std::shared_ptr<nn::Linear>> linears;
      std::vector<std::shared_ptr<ProbedLinear>> units;
      std::vector<std::string> log;
      FullyShardedModel model(group);
      for (int i = 0; i < kUnits; ++i) {
        units.push_back(std::make_shared<ProbedLinear>(gen, linears, log));
        linears.push_back(units.back()->linear());
        model.add(*units.back());
      }
      for (const Variable& shard : model.shards()) {
        EXPECT_EQ(shard.numel(), (kWidth * kWidth + kWidth + ranks - 1) / ranks);
      }
      EXPECT_EQ(gathered(linears), "----");
      const Variable y = model.forward(Variable(Tensor::ones({2, kWidth}), true));
      autograd::sum(y).backward();
      model.finish_backward();
      EXPECT_EQ(gathered(linears), "----");
      for (const Variable& shard : model.shards()) EXPECT_TRUE(shard.grad().defined());
      if (group.rank() == 0) {
        std::lock_guard<std::mutex> lock(mu);
        rank0_log = log;
      }
    });
    // While unit i computes it is gathered, the unit it needs next is on its way (i + 1 forward,
    // i - 1 backward) and the one it is done with is freed.
    EXPECT_EQ(rank0_log, (std::vector<std::string>{"forward gg--", "forward -gg-", "forward --gg",
                                                   "forward ---g", "backward --gg", "backward -gg-",
                                                   "backward gg--", "backward g---"}));
  }
}

}  // namespace
}  // namespace tessera::parallel
