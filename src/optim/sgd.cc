#include "tessera/optim/sgd.h"

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
        detail::concat("Sgd: invalid ", name, " ", value, " (must be finite and >= 0)"));
  }
}

// Runs before the base constructor, so option errors come first and name Sgd.
const SgdOptions& validated(const SgdOptions& options) {
  check_option("lr", options.lr);
  check_option("momentum", options.momentum);
  check_option("dampening", options.dampening);
  check_option("weight_decay", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError(
        detail::concat("Sgd: nesterov needs momentum > 0 and dampening 0, got momentum ",
                       options.momentum, " and dampening ", options.dampening));
  }
  return options;
}

// Coefficients in the parameter's type, as PyTorch casts its Python-float scalars.
template <typename T>
struct SgdCoeffs {
  T lr;
  T momentum;
  T one_minus_dampening;
  T weight_decay;
};

// One pass over p, g and buf. The flags are template parameters so each case's loop has no
// branch and vectorises. kDecay is off for weight_decay == 0, as PyTorch skips the term (0 * inf
// would turn an infinite parameter into NaN). kFirst: buf starts as d (PyTorch clones d_p).
template <typename T, bool kDecay, bool kMomentum, bool kNesterov, bool kFirst>
void sgd_loop(T* p, const T* g, T* buf, int64_t n, const SgdCoeffs<T>& c) {
  const T lr = c.lr;
  const T wd = c.weight_decay;
  const T m = c.momentum;
  const T damp = c.one_minus_dampening;
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if constexpr (kDecay) d += wd * p[i];
    if constexpr (kMomentum) {
      T b;
      if constexpr (kFirst) {
        b = d;
      } else {
        b = m * buf[i] + damp * d;
      }
      buf[i] = b;
      if constexpr (kNesterov) {
        d += m * b;
      } else {
        d = b;
      }
    }
    p[i] -= lr * d;
  }
}

template <typename T, bool kDecay>
void sgd_chunk(T* p, const T* g, T* buf, int64_t n, const SgdCoeffs<T>& c, bool nesterov,
               bool first) {
  if (buf == nullptr) return sgd_loop<T, kDecay, false, false, false>(p, g, buf, n, c);
  if (nesterov) {
    if (first) return sgd_loop<T, kDecay, true, true, true>(p, g, buf, n, c);
    return sgd_loop<T, kDecay, true, true, false>(p, g, buf, n, c);
  }
  if (first) return sgd_loop<T, kDecay, true, false, true>(p, g, buf, n, c);
  sgd_loop<T, kDecay, true, false, false>(p, g, buf, n, c);
}

template <typename T, bool kDecay>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdCoeffs<T>& c, bool nesterov,
                bool first) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    sgd_chunk<T, kDecay>(p + begin, g + begin, buf ? buf + begin : nullptr, end - begin, c,
                         nesterov, first);
  });
}

}  // namespace

Sgd::Sgd(std::vector<autograd::Variable> params, const SgdOptions& options)
    : Optimizer(std::move(params), validated(options).lr), options_(options) {}

void Sgd::update(const Tensor& param, const Tensor& grad, ParamState& state) {
  const bool first = state.buffers.empty();
  if (first && options_.momentum != 0.0) {
    // The first update's loop writes every element (buf = d), so it need not be zeroed.
    state.buffers.push_back(Tensor::empty(param.shape(), param.dtype()));
  }
  TESSERA_DISPATCH_FLOATING(param.dtype(), "Sgd.step", [&] {
    const SgdCoeffs<scalar_t> c{static_cast<scalar_t>(lr()),
                                static_cast<scalar_t>(options_.momentum),
                                static_cast<scalar_t>(1.0 - options_.dampening),
                                static_cast<scalar_t>(options_.weight_decay)};
    scalar_t* p = param.data<scalar_t>();
    const scalar_t* g = grad.data<scalar_t>();
    scalar_t* buf = state.buffers.empty() ? nullptr : state.buffers[0].data<scalar_t>();
    if (options_.weight_decay != 0.0) {
      sgd_update<scalar_t, true>(p, g, buf, param.numel(), c, options_.nesterov, first);
    } else {
      sgd_update<scalar_t, false>(p, g, buf, param.numel(), c, options_.nesterov, first);
    }
  });
}

}  // namespace tessera::optim
