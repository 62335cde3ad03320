#include "tessera/optim/step_lr.h"

#include <cmath>

#include "tessera/core/error.h"

namespace tessera::optim {

StepLr::StepLr(Optimizer& optimizer, int64_t step_size, double gamma)
    : LrScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size < 1) {
    throw ValueError(detail::concat("StepLr: invalid step_size ", step_size, " (must be >= 1)"));
  }
  if (!(gamma >= 0.0) || !std::isfinite(gamma)) {
    throw ValueError(detail::concat("StepLr: invalid gamma ", gamma, " (must be finite and >= 0)"));
  }
  apply();
}

double StepLr::lr_at(int64_t t) const {
  return base_lr() * std::pow(gamma_, static_cast<double>(t / step_size_));
}

}  // namespace tessera::optim
