#include "tessera/optim/adagrad.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include "for_each_chunk.h"
#include "tessera/core/error.h"

namespace tessera::optim {
namespace {

void check_option(const char* name, double value) {
  if (!(value >= 0.0) || !std::isfinite(value)) {
    throw ValueError(
        detail::concat("Adagrad: invalid ", name, " ", value, " (must be finite and >= 0)"));
  }
}

// Runs before the base constructor, so option errors come first and name Adagrad.
const AdagradOptions& validated(const AdagradOptions& options) {
  check_option("lr", options.lr);
  check_option("lr_decay", options.lr_decay);
  check_option("weight_decay", options.weight_decay);
  check_option("initial_accumulator_value", options.initial_accumulator_value);
  check_option("eps", options.eps);
  return options;
}

// One pass over p, g and the sum of squares. kDecay is off for weight_decay == 0, as PyTorch
// skips the term.
template <typename T, bool kDecay>
void adagrad_loop(T* p, const T* g, T* sum, int64_t n, T clr, T weight_decay, T eps) {
  for (int64_t i = 0; i < n; ++i) {
    T grad = g[i];
    if constexpr (kDecay) grad += weight_decay * p[i];
    const T s = sum[i] + grad * grad;
    sum[i] = s;
    p[i] -= clr * (grad / (std::sqrt(s) + eps));
  }
}

}  // namespace

Adagrad::Adagrad(std::vector<autograd::Variable> params, const AdagradOptions& options)
    : Optimizer(std::move(params), validated(options).lr), options_(options) {}

void Adagrad::update(const Tensor& param, const Tensor& grad, ParamState& state) {
  if (state.buffers.empty()) {
    state.buffers.push_back(
        Tensor::full(param.shape(), options_.initial_accumulator_value, param.dtype()));
  }
  // PyTorch computes clr in Python floats from the float step count.
  const double clr = lr() / (1.0 + static_cast<double>(state.step - 1) * options_.lr_decay);
  TESSERA_DISPATCH_FLOATING(param.dtype(), "Adagrad.step", [&] {
    using T = scalar_t;
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* sum = state.buffers[0].data<T>();
    const auto c = static_cast<T>(clr);
    const auto wd = static_cast<T>(options_.weight_decay);
    const auto eps = static_cast<T>(options_.eps);
    const bool decay = options_.weight_decay != 0.0;
    for_each_chunk(param.numel(), [&](int64_t b, int64_t e) {
      if (decay) {
        adagrad_loop<T, true>(p + b, g + b, sum + b, e - b, c, wd, eps);
      } else {
        adagrad_loop<T, false>(p + b, g + b, sum + b, e - b, c, wd, eps);
      }
    });
  });
}

}  // namespace tessera::optim
