#pragma once

#include <memory>

#include "strategy.h"

namespace tessera::train {

// Strategy "none": one optimizer over the whole model, stepping on the gradients backward left.
// Its checkpoint section "optimizer" holds the optimizer's state. The base of DDP, which only
// averages the gradients first.
class PlainStrategy : public Strategy {
 public:
  PlainStrategy(const OptimizerConfig& config, comm::ProcessGroup* group)
      : PlainStrategy(config, group, /*group_of_one=*/false) {}

  void attach(nn::Sequential& model) override;
  [[nodiscard]] optim::Optimizer& optimizer() override { return *optimizer_; }
  void zero_grad() override;
  void step() override;
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;
  [[nodiscard]] bool holds_whole_state() const override { return true; }

 protected:
  PlainStrategy(const OptimizerConfig& config, comm::ProcessGroup* group, bool group_of_one)
      : Strategy(group, group_of_one), config_(config) {}

 private:
  OptimizerConfig config_;
  nn::Sequential* model_ = nullptr;
  std::unique_ptr<optim::Optimizer> optimizer_;
};

}  // namespace tessera::train
