#include "row_optimizer.h"

#include <cmath>

namespace tessera::parallel::ps {
namespace {

using Kind = OptimizerSpec::Kind;

void sgd(const OptimizerSpec& o, float lr, int64_t step, float* w, float* buf, const float* g,
         int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (o.weight_decay != 0.0f) d += o.weight_decay * w[i];
    if (o.momentum != 0.0f) {
      buf[i] = step == 1 ? d : o.momentum * buf[i] + d;
      d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
    }
    w[i] -= lr * d;
  }
}

void adagrad(const OptimizerSpec& o, float lr, float* w, float* sum, const float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (o.weight_decay != 0.0f) d += o.weight_decay * w[i];
    sum[i] += d * d;
    w[i] -= lr * (d / (std::sqrt(sum[i]) + o.eps));
  }
}

void adam(const OptimizerSpec& o, float lr, int64_t step, float* w, float* m, float* v,
          const float* g, int64_t n) {
  // Bias corrections in double, as PyTorch computes them on the host.
  const auto t = static_cast<double>(step);
  const auto step_size = static_cast<float>(lr / (1.0 - std::pow(o.beta1, t)));
  const auto correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(o.beta2, t)));
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (o.weight_decay != 0.0f) d += o.weight_decay * w[i];
    m[i] = o.beta1 * m[i] + (1.0f - o.beta1) * d;
    v[i] = o.beta2 * v[i] + (1.0f - o.beta2) * d * d;
    w[i] -= step_size * (m[i] / (std::sqrt(v[i]) / correction2_sqrt + o.eps));
  }
}

// FTRL-Proximal (McMahan et al., KDD 2013, algorithm 1) with alpha = lr. z and n are the
// per-coordinate state; the weight is a closed form of them, so L1 gives exact zeros.
void ftrl(const OptimizerSpec& o, float lr, float* w, float* z, float* nsum, const float* g,
          int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float next = nsum[i] + gi * gi;
    const float sigma = (std::sqrt(next) - std::sqrt(nsum[i])) / lr;
    z[i] += gi - sigma * w[i];
    nsum[i] = next;
    if (std::abs(z[i]) <= o.l1) {
      w[i] = 0.0f;
    } else {
      const float sign = z[i] < 0.0f ? -1.0f : 1.0f;
      w[i] = -(z[i] - sign * o.l1) / ((o.ftrl_beta + std::sqrt(next)) / lr + o.l2);
    }
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
                  const float* g, int64_t n) {
  switch (spec.kind) {
    case Kind::kSgd:
      return sgd(spec, lr, step, w, state, g, n);
    case Kind::kAdagrad:
      return adagrad(spec, lr, w, state, g, n);
    case Kind::kAdam:
      return adam(spec, lr, step, w, state, state + n, g, n);
    case Kind::kFtrl:
      return ftrl(spec, lr, w, state, state + n, g, n);
  }
}

}  // namespace tessera::parallel::ps
