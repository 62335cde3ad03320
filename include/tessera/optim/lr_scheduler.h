#pragma once

#include <cstdint>

#include "tessera/core/serialize.h"

namespace tessera::optim {

class Optimizer;

// Base of the learning-rate schedules. A schedule is a closed form lr_at(t) of the number of
// step() calls t; whether t counts optimizer steps or epochs is the caller's choice. Constructing
// a schedule records the optimizer's current lr as its base and sets the lr to lr_at(0); each
// step() advances t and sets the optimizer's lr to lr_at(t) (PyTorch's last_epoch semantics).
//
// Borrows the optimizer, which must outlive it. Not thread-safe. Not copyable.
class LrScheduler {
 public:
  virtual ~LrScheduler() = default;
  LrScheduler(const LrScheduler&) = delete;
  LrScheduler& operator=(const LrScheduler&) = delete;

  // Advances t by one and sets the optimizer's lr to lr_at(t).
  void step();
  // lr_at(t) for the current t: what the optimizer's lr was last set to.
  [[nodiscard]] double lr() const { return lr_at(step_count_); }
  // The lr this schedule gives after t steps.
  [[nodiscard]] virtual double lr_at(int64_t t) const = 0;
  // The number of step() calls so far.
  [[nodiscard]] int64_t step_count() const { return step_count_; }
  // The optimizer this schedule sets the lr of.
  [[nodiscard]] const Optimizer& optimizer() const { return optimizer_; }
  // The optimizer's lr when this schedule was constructed.
  [[nodiscard]] double base_lr() const { return base_lr_; }
  // "step_lr", "cosine_lr", "linear_warmup": the tag save_state writes and load_state checks.
  [[nodiscard]] virtual const char* kind() const = 0;

  // Writes the kind, t and the base lr (and a following schedule's state, if any).
  void save_state(BinaryWriter& out) const;
  // Reads what save_state wrote and sets the optimizer's lr to lr_at(t). Throws FormatError on
  // another kind, a negative t, a bad base lr or data cut short.
  void load_state(BinaryReader& in);
  // Makes `lr` the base lr (of a following schedule too) at the same t, and sets the optimizer's
  // lr to lr_at(t): a job whose learning rate scales with its number of processes, resumed on
  // another number.
  virtual void set_base_lr(double lr);

 protected:
  // Records optimizer.lr() as the base lr. A derived constructor calls apply() once its fields
  // are set (lr_at is virtual, so the base cannot).
  explicit LrScheduler(Optimizer& optimizer);

  // Sets the optimizer's lr to lr_at(step_count()).
  void apply();
  // State beyond t and the base lr (a nested schedule). load_extra runs after the base fields
  // are read and checked and before they are committed, so if it throws nothing here changes.
  virtual void save_extra(BinaryWriter& /*out*/) const {}
  virtual void load_extra(BinaryReader& /*in*/) {}

 private:
  Optimizer& optimizer_;
  double base_lr_;
  int64_t step_count_ = 0;
};

}  // namespace tessera::optim
