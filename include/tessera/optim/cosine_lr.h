#pragma once

#include <cstdint>

#include "tessera/optim/lr_scheduler.h"

namespace tessera::optim {

class Optimizer;

// torch.optim.lr_scheduler.CosineAnnealingLR in its closed form:
//   lr_at(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / t_max)) / 2
// It reaches eta_min at t = t_max and, past it, follows the cosine back up (as PyTorch does);
// stop calling step() or pick t_max = the run's length to stay at the bottom.
class CosineLr : public LrScheduler {
 public:
  // Throws ValueError when t_max < 1 or eta_min is negative or not finite.
  CosineLr(Optimizer& optimizer, int64_t t_max, double eta_min = 0.0);

  [[nodiscard]] double lr_at(int64_t t) const override;
  [[nodiscard]] const char* kind() const override { return "cosine_lr"; }

 private:
  int64_t t_max_;
  double eta_min_;
};

}  // namespace tessera::optim
