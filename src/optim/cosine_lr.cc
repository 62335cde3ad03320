#include "tessera/optim/cosine_lr.h"

#include <cmath>
#include <numbers>

#include "tessera/core/error.h"

namespace tessera::optim {

CosineLr::CosineLr(Optimizer& optimizer, int64_t t_max, double eta_min)
    : LrScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max < 1) {
    throw ValueError(detail::concat("CosineLr: invalid t_max ", t_max, " (must be >= 1)"));
  }
  if (!(eta_min >= 0.0) || !std::isfinite(eta_min)) {
    throw ValueError(
        detail::concat("CosineLr: invalid eta_min ", eta_min, " (must be finite and >= 0)"));
  }
  apply();
}

double CosineLr::lr_at(int64_t t) const {
  const double phase = std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
}

}  // namespace tessera::optim
