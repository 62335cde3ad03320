#pragma once

#include <cstdint>

#include "tessera/optim/lr_scheduler.h"

namespace tessera::optim {

class Optimizer;

// torch.optim.lr_scheduler.StepLR: lr_at(t) = base_lr * gamma^floor(t / step_size).
class StepLr : public LrScheduler {
 public:
  // Throws ValueError when step_size < 1 or gamma is negative or not finite.
  StepLr(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

  [[nodiscard]] double lr_at(int64_t t) const override;
  [[nodiscard]] const char* kind() const override { return "step_lr"; }

 private:
  int64_t step_size_;
  double gamma_;
};

}  // namespace tessera::optim
