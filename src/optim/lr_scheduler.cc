#include "tessera/optim/lr_scheduler.h"

#include <cmath>
#include <string>

#include "tessera/core/error.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {
namespace {

constexpr uint32_t kSchedulerStateVersion = 1;
// Longer than any kind tag; a corrupt length is refused before allocating.
constexpr size_t kMaxSchedulerKindLength = 64;

}  // namespace

LrScheduler::LrScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}

void LrScheduler::apply() { optimizer_.set_lr(lr_at(step_count_)); }

void LrScheduler::step() {
  ++step_count_;
  apply();
}

void LrScheduler::set_base_lr(double lr) {
  base_lr_ = lr;
  apply();
}

void LrScheduler::save_state(BinaryWriter& out) const {
  out.write_string(kind());
  out.write_u32(kSchedulerStateVersion);
  out.write_i64(step_count_);
  out.write_f64(base_lr_);
  save_extra(out);
}

void LrScheduler::load_state(BinaryReader& in) {
  const std::string where = detail::concat(kind(), ".load_state: ", in.source());
  std::string saved_kind = in.read_string(kMaxSchedulerKindLength);
  if (saved_kind != kind()) {
    throw FormatError(detail::concat(where, ": state is for schedule '", saved_kind,
                                     "', expected '", kind(), "'"));
  }
  uint32_t version = in.read_u32();
  if (version != kSchedulerStateVersion) {
    throw FormatError(
        detail::concat(where, ": state version ", version, ", expected ", kSchedulerStateVersion));
  }
  int64_t step_count = in.read_i64();
  if (step_count < 0) {
    throw FormatError(detail::concat(where, ": negative step count ", step_count));
  }
  double base_lr = in.read_f64();
  if (!(base_lr >= 0.0) || !std::isfinite(base_lr)) {
    throw FormatError(detail::concat(where, ": invalid base lr ", base_lr));
  }
  load_extra(in);
  step_count_ = step_count;
  base_lr_ = base_lr;
  apply();
}

}  // namespace tessera::optim
