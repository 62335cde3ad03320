#pragma once

#include <cstdint>
#include <memory>

#include "tessera/optim/lr_scheduler.h"

namespace tessera::optim {

class Optimizer;

// Linear warmup, optionally followed by another schedule:
//   t <  warmup_steps: lr_at(t) = base_lr * (start_factor + (1 - start_factor) * t / warmup_steps)
//   t >= warmup_steps: after ? after->lr_at(t - warmup_steps) : base_lr
// The warmup is torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1.0,
// total_iters=warmup_steps), with its default start_factor of 1/3; with `after` the whole is
// SequentialLR([LinearLR(...), after], milestones=[warmup_steps]). Construct `after` on the same
// optimizer first (so it records the same base lr), then hand it over:
//   auto cosine = std::make_unique<CosineLr>(opt, total - warmup);
//   LinearWarmup schedule(opt, warmup, std::move(cosine));
// The warmup owns `after` and drives it through lr_at; after's own step() is never called, and
// its state is saved and loaded with the warmup's.
class LinearWarmup : public LrScheduler {
 public:
  static constexpr double kDefaultStartFactor = 1.0 / 3.0;

  // Throws ValueError when warmup_steps < 1, start_factor lies outside (0, 1] (PyTorch's
  // bounds), or `after` drives another optimizer.
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps,
               std::unique_ptr<LrScheduler> after = nullptr,
               double start_factor = kDefaultStartFactor);

  [[nodiscard]] double lr_at(int64_t t) const override;
  [[nodiscard]] const char* kind() const override { return "linear_warmup"; }
  void set_base_lr(double lr) override;

 protected:
  void save_extra(BinaryWriter& out) const override;
  void load_extra(BinaryReader& in) override;

 private:
  int64_t warmup_steps_;
  std::unique_ptr<LrScheduler> after_;
  double start_factor_;
};

}  // namespace tessera::optim
