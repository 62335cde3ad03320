#include "tessera/optim/linear_warmup.h"

#include <cstdint>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {

LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps,
                           std::unique_ptr<LrScheduler> after, double start_factor)
    : LrScheduler(optimizer),
      warmup_steps_(warmup_steps),
      after_(std::move(after)),
      start_factor_(start_factor) {
  if (warmup_steps < 1) {
    throw ValueError(
        detail::concat("LinearWarmup: invalid warmup_steps ", warmup_steps, " (must be >= 1)"));
  }
  if (!(start_factor > 0.0 && start_factor <= 1.0)) {
    throw ValueError(detail::concat("LinearWarmup: invalid start_factor ", start_factor,
                                    " (must be in (0, 1])"));
  }
  if (after_ && &after_->optimizer() != &optimizer) {
    throw ValueError(detail::concat("LinearWarmup: the following ", after_->kind(),
                                    " schedule drives another optimizer"));
  }
  apply();
}

double LinearWarmup::lr_at(int64_t t) const {
  if (t >= warmup_steps_) return after_ ? after_->lr_at(t - warmup_steps_) : base_lr();
  const double progress = static_cast<double>(t) / static_cast<double>(warmup_steps_);
  return base_lr() * (start_factor_ + (1.0 - start_factor_) * progress);
}

void LinearWarmup::save_extra(BinaryWriter& out) const {
  out.write_u32(after_ ? 1 : 0);
  if (after_) after_->save_state(out);
}

void LinearWarmup::load_extra(BinaryReader& in) {
  uint64_t at = in.offset();
  uint32_t has_after = in.read_u32();
  if (has_after != (after_ ? 1u : 0u)) {
    throw FormatError(detail::concat("linear_warmup.load_state: ", in.source(), ": at byte ", at,
                                     ": state ", has_after ? "has" : "has no",
                                     " following schedule, this warmup ",
                                     after_ ? "has one" : "has none"));
  }
  if (after_) after_->load_state(in);
}

void LinearWarmup::set_base_lr(double lr) {
  if (after_) after_->set_base_lr(lr);
  LrScheduler::set_base_lr(lr);  // last: the optimizer's lr is the warmup's
}

}  // namespace tessera::optim
