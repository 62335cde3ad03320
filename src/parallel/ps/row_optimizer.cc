#include "row_optimizer.h"

#include <cmath>

namespace tessera::parallel::ps {
namespace {

using Kind = OptimizerSpec::Kind;

// g + decay * w, skipping the term when decay is 0 as PyTorch does (0 * inf would turn an
// infinite parameter into NaN). The condition is loop-invariant: the compiler hoists it.
inline float with_decay(float g, float decay, float w) { return decay == 0.0f ? g : g + decay * w; }

// The settings are copied into locals and the arrays marked __restrict so that the compiler may
// vectorise each loop (through a reference to the spec, every store to w could change them).
void sgd(const OptimizerSpec& o, float lr, int64_t step, float* __restrict w, float* __restrict buf,
         const float* __restrict g, float scale, int64_t n) {
  const float decay = o.weight_decay;
  const float momentum = o.momentum;
  if (momentum == 0.0f) {
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * with_decay(g[i] * scale, decay, w[i]);
    return;
  }
  const bool first = step == 1;
  const bool nesterov = o.nesterov;
  for (int64_t i = 0; i < n; ++i) {
    const float d = with_decay(g[i] * scale, decay, w[i]);
    const float b = first ? d : momentum * buf[i] + d;
    buf[i] = b;
    w[i] -= lr * (nesterov ? d + momentum * b : b);
  }
}

void adagrad(const OptimizerSpec& o, float lr, float* __restrict w, float* __restrict sum,
             const float* __restrict g, float scale, int64_t n) {
  const float decay = o.weight_decay;
  const float eps = o.eps;
  for (int64_t i = 0; i < n; ++i) {
    const float d = with_decay(g[i] * scale, decay, w[i]);
    sum[i] += d * d;
    w[i] -= lr * (d / (std::sqrt(sum[i]) + eps));
  }
}

void adam(const OptimizerSpec& o, float lr, int64_t step, float* __restrict w, float* __restrict m,
          float* __restrict v, const float* __restrict g, float scale, int64_t n) {
  // Bias corrections in double, as PyTorch computes them on the host.
  const auto t = static_cast<double>(step);
  const auto step_size = static_cast<float>(lr / (1.0 - std::pow(o.beta1, t)));
  const auto correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(o.beta2, t)));
  const float decay = o.weight_decay;
  const float beta1 = o.beta1;
  const float beta2 = o.beta2;
  const float eps = o.eps;
  for (int64_t i = 0; i < n; ++i) {
    const float d = with_decay(g[i] * scale, decay, w[i]);
    m[i] = beta1 * m[i] + (1.0f - beta1) * d;
    v[i] = beta2 * v[i] + (1.0f - beta2) * d * d;
    w[i] -= step_size * (m[i] / (std::sqrt(v[i]) / correction2_sqrt + eps));
  }
}

// FTRL-Proximal (McMahan et al., KDD 2013, algorithm 1) with alpha = lr. z and n are the
// per-coordinate state; the weight is a closed form of them, so L1 gives exact zeros.
void ftrl(const OptimizerSpec& o, float lr, float* __restrict w, float* __restrict z,
          float* __restrict nsum, const float* __restrict g, float scale, int64_t n) {
  const float l1 = o.l1;
  const float l2 = o.l2;
  const float beta = o.ftrl_beta;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * scale;
    const float next = nsum[i] + gi * gi;
    const float sigma = (std::sqrt(next) - std::sqrt(nsum[i])) / lr;
    z[i] += gi - sigma * w[i];
    nsum[i] = next;
    const float sign = z[i] < 0.0f ? -1.0f : 1.0f;
    w[i] = std::abs(z[i]) <= l1 ? 0.0f : -(z[i] - sign * l1) / ((beta + std::sqrt(next)) / lr + l2);
  }
}

}  // namespace

int state_slots(const OptimizerSpec& spec) {
  switch (spec.kind) {
    case Kind::kSgd:
      return spec.momentum != 0.0f ? 1 : 0;
    case Kind::kAdagrad:
      return 1;
    case Kind::kAdam:
    case Kind::kFtrl:
      return 2;
  }
  return 0;
}

void init_state(const OptimizerSpec& spec, float* state, int64_t n) {
  const int64_t count = n * state_slots(spec);
  const float value = spec.kind == Kind::kAdagrad ? spec.initial_accumulator : 0.0f;
  for (int64_t i = 0; i < count; ++i) state[i] = value;
}

void apply_update(const OptimizerSpec& spec, float lr, int64_t step, float* w, float* state,
                  const float* g, int64_t n, float scale) {
  switch (spec.kind) {
    case Kind::kSgd:
      return sgd(spec, lr, step, w, state, g, scale, n);
    case Kind::kAdagrad:
      return adagrad(spec, lr, w, state, g, scale, n);
    case Kind::kAdam:
      return adam(spec, lr, step, w, state, state + n, g, scale, n);
    case Kind::kFtrl:
      return ftrl(spec, lr, w, state, state + n, g, scale, n);
  }
}

}  // namespace tessera::parallel::ps
