#include "tessera/optim/clip.h"

#include <cmath>
#include <cstdint>

#include "tessera/core/error.h"

namespace tessera::optim {
namespace {

// PyTorch's guard against dividing by a zero norm, kept for identical results.
constexpr double kNormEps = 1e-6;

template <typename T>
double sum_of_squares(const T* g, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const auto x = static_cast<double>(g[i]);
    sum += x * x;
  }
  return sum;
}

}  // namespace

double clip_grad_norm(const std::vector<autograd::Variable>& params, double max_norm) {
  if (!(max_norm >= 0.0)) {
    throw ValueError(
        detail::concat("clip_grad_norm: invalid max_norm ", max_norm, " (must be >= 0)"));
  }
  double total = 0.0;
  for (autograd::Variable p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    // The scaling below writes through the gradient as a flat array; a strided gradient is
    // replaced by a contiguous copy once (rare: the engine makes contiguous gradients).
    if (!p.grad().is_contiguous()) p.set_grad(p.grad().contiguous());
    const Tensor& g = p.grad();
    total += TESSERA_DISPATCH_FLOATING(
        g.dtype(), "clip_grad_norm", [&] { return sum_of_squares(g.data<scalar_t>(), g.numel()); });
  }
  const double norm = std::sqrt(total);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + kNormEps);
  if (coef >= 1.0) return norm;
  for (const autograd::Variable& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor& g = p.grad();
    TESSERA_DISPATCH_FLOATING(g.dtype(), "clip_grad_norm", [&] {
      // PyTorch multiplies by the coefficient as a tensor of the gradient's dtype.
      const auto c = static_cast<scalar_t>(coef);
      scalar_t* data = g.data<scalar_t>();
      for (int64_t i = 0, n = g.numel(); i < n; ++i) data[i] *= c;
    });
  }
  return norm;
}

}  // namespace tessera::optim
