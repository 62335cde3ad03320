#include "tessera/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "for_each_chunk.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"

namespace tessera::optim {
namespace {

// PyTorch's guard against dividing by a zero norm, kept for identical results.
constexpr double kNormEps = 1e-6;

// Sum of squares of one block, in double. Eight running sums in a fixed order: the compiler may
// vectorise them (it may not reorder a single sum) and the result stays the same on every run.
template <typename T>
double block_sum_of_squares(const T* g, int64_t n) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const auto x = static_cast<double>(g[i + k]);
      lanes[k] += x * x;
    }
  }
  for (; i < n; ++i) {
    const auto x = static_cast<double>(g[i]);
    lanes[0] += x * x;
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// Blocks of a fixed size, summed in order after the threads finish: the norm does not depend on
// the thread count, so every rank and every rerun clips alike.
template <typename T>
double sum_of_squares(const T* g, int64_t n) {
  const int64_t blocks = (n + kParallelGrain - 1) / kParallelGrain;
  if (blocks <= 1) return block_sum_of_squares(g, n);
  std::vector<double> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * kParallelGrain;
      partial[static_cast<size_t>(b)] =
          block_sum_of_squares(g + begin, std::min(kParallelGrain, n - begin));
    }
  });
  double sum = 0.0;
  for (double s : partial) sum += s;
  return sum;
}

}  // namespace

double gradient_sum_of_squares(const std::vector<autograd::Variable>& params) {
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
  return total;
}

void clip_to_norm(const std::vector<autograd::Variable>& params, double norm, double max_norm) {
  if (!(max_norm >= 0.0)) {
    throw ValueError(
        detail::concat("clip_grad_norm: invalid max_norm ", max_norm, " (must be >= 0)"));
  }
  if (!std::isfinite(norm)) return;
  const double coef = max_norm / (norm + kNormEps);
  if (coef >= 1.0) return;
  for (autograd::Variable p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    if (!p.grad().is_contiguous()) p.set_grad(p.grad().contiguous());
    const Tensor& g = p.grad();
    TESSERA_DISPATCH_FLOATING(g.dtype(), "clip_grad_norm", [&] {
      // PyTorch multiplies by the coefficient as a tensor of the gradient's dtype.
      const auto c = static_cast<scalar_t>(coef);
      scalar_t* data = g.data<scalar_t>();
      for_each_chunk(g.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) data[i] *= c;
      });
    });
  }
}

double clip_grad_norm(const std::vector<autograd::Variable>& params, double max_norm) {
  if (!(max_norm >= 0.0)) {
    throw ValueError(
        detail::concat("clip_grad_norm: invalid max_norm ", max_norm, " (must be >= 0)"));
  }
  const double norm = std::sqrt(gradient_sum_of_squares(params));
  clip_to_norm(params, norm, max_norm);
  return norm;
}

}  // namespace tessera::optim
