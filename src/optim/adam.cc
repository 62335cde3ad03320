#include "tessera/optim/adam.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include "for_each_chunk.h"
#include "tessera/core/error.h"

namespace tessera::optim {
namespace {

enum class Decay { kNone, kL2, kDecoupled };

void check_nonnegative(const char* who, const char* name, double value) {
  if (!(value >= 0.0) || !std::isfinite(value)) {
    throw ValueError(
        detail::concat(who, ": invalid ", name, " ", value, " (must be finite and >= 0)"));
  }
}

void check_beta(const char* who, const char* name, double value) {
  if (!(value >= 0.0 && value < 1.0)) {
    throw ValueError(detail::concat(who, ": invalid ", name, " ", value, " (must be in [0, 1))"));
  }
}

// Runs before the base constructor, so option errors come first and name the optimizer.
const AdamOptions& validated(const AdamOptions& options, bool decoupled) {
  const char* who = decoupled ? "AdamW" : "Adam";
  check_nonnegative(who, "lr", options.lr);
  check_nonnegative(who, "eps", options.eps);
  check_beta(who, "beta1", options.beta1);
  check_beta(who, "beta2", options.beta2);
  check_nonnegative(who, "weight_decay", options.weight_decay);
  return options;
}

// Per-step coefficients in the parameter's type; the bias corrections are computed in double as
// PyTorch computes them in Python floats.
template <typename T>
struct AdamCoeffs {
  T beta1;
  T one_minus_beta1;
  T beta2;
  T one_minus_beta2;
  T eps;
  T weight_decay;           // kL2: added to the gradient
  T decay_factor;           // kDecoupled: 1 - lr * weight_decay
  T step_size;              // lr / (1 - beta1^t)
  T bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};

// One pass over p, g and the moment buffers. The flags are template parameters so the loop has
// no branch; with weight_decay == 0 no decay term is formed at all, as in PyTorch.
template <typename T, Decay kDecay, bool kAmsgrad>
void adam_loop(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamCoeffs<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    T grad = g[i];
    T param = p[i];
    if constexpr (kDecay == Decay::kL2) grad += c.weight_decay * param;
    if constexpr (kDecay == Decay::kDecoupled) param *= c.decay_factor;
    const T mi = c.beta1 * m[i] + c.one_minus_beta1 * grad;
    T vi = c.beta2 * v[i] + c.one_minus_beta2 * grad * grad;
    m[i] = mi;
    v[i] = vi;
    if constexpr (kAmsgrad) {
      // torch.maximum propagates NaN; std::max would drop a NaN in its second argument.
      vi = std::isnan(vi) ? vi : (vmax[i] < vi ? vi : vmax[i]);
      vmax[i] = vi;
    }
    const T denom = std::sqrt(vi) / c.bias_correction2_sqrt + c.eps;
    p[i] = param - c.step_size * (mi / denom);
  }
}

template <typename T, Decay kDecay>
void adam_update(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamCoeffs<T>& c) {
  for_each_chunk(n, [&](int64_t b, int64_t e) {
    if (vmax != nullptr) {
      adam_loop<T, kDecay, true>(p + b, g + b, m + b, v + b, vmax + b, e - b, c);
    } else {
      adam_loop<T, kDecay, false>(p + b, g + b, m + b, v + b, nullptr, e - b, c);
    }
  });
}

}  // namespace

Adam::Adam(std::vector<autograd::Variable> params, const AdamOptions& options)
    : Adam(std::move(params), options, /*decoupled=*/false) {}

Adam::Adam(std::vector<autograd::Variable> params, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(params), validated(options, decoupled).lr),
      options_(options),
      decoupled_(decoupled) {}

void Adam::update(const Tensor& param, const Tensor& grad, ParamState& state) {
  if (state.buffers.empty()) {
    for (size_t b = 0; b < num_buffers(); ++b) {
      state.buffers.push_back(Tensor::zeros(param.shape(), param.dtype()));
    }
  }
  const double t = static_cast<double>(state.step);
  const double lr = this->lr();
  const AdamOptions& o = options_;
  Decay decay = Decay::kNone;
  if (o.weight_decay != 0.0) decay = decoupled_ ? Decay::kDecoupled : Decay::kL2;
  TESSERA_DISPATCH_FLOATING(param.dtype(), kind(), [&] {
    using T = scalar_t;
    const AdamCoeffs<T> c{static_cast<T>(o.beta1),
                          static_cast<T>(1.0 - o.beta1),
                          static_cast<T>(o.beta2),
                          static_cast<T>(1.0 - o.beta2),
                          static_cast<T>(o.eps),
                          static_cast<T>(o.weight_decay),
                          static_cast<T>(1.0 - lr * o.weight_decay),
                          static_cast<T>(lr / (1.0 - std::pow(o.beta1, t))),
                          static_cast<T>(std::sqrt(1.0 - std::pow(o.beta2, t)))};
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = state.buffers[0].data<T>();
    T* v = state.buffers[1].data<T>();
    T* vmax = o.amsgrad ? state.buffers[2].data<T>() : nullptr;
    const int64_t n = param.numel();
    switch (decay) {
      case Decay::kNone:
        return adam_update<T, Decay::kNone>(p, g, m, v, vmax, n, c);
      case Decay::kL2:
        return adam_update<T, Decay::kL2>(p, g, m, v, vmax, n, c);
      case Decay::kDecoupled:
        return adam_update<T, Decay::kDecoupled>(p, g, m, v, vmax, n, c);
    }
  });
}

}  // namespace tessera::optim
