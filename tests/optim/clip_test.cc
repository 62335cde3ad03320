#include "tessera/optim/clip.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "optim_test_util.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"

namespace tessera::optim {
namespace {

using testing::expect_near;
using testing::make_param;
using testing::set_grad;
using testing::values;

TEST(ClipGradNorm, ReturnsGlobalNormAndScalesAllGradients) {
  auto a = make_param({0, 0});
  auto b = make_param({0}, DType::kFloat32);
  auto no_grad = make_param({7});
  set_grad(a, {3, 4});
  set_grad(b, {12});
  // sqrt(9 + 16 + 144) = 13 across both parameters, float32 and float64 together.
  EXPECT_NEAR(clip_grad_norm({a, b, no_grad}, 6.5), 13.0, 1e-12);
  const double coef = 6.5 / (13.0 + 1e-6);
  expect_near(values(a.grad()), {3 * coef, 4 * coef}, 1e-15);
  expect_near(values(b.grad()), {12 * coef}, 1e-6);
  EXPECT_FALSE(no_grad.grad().defined());
  // The clipped gradients now have norm max_norm (less PyTorch's 1e-6 margin).
  EXPECT_NEAR(clip_grad_norm({a, b}, 100.0), 6.5, 1e-6);
}

TEST(ClipGradNorm, LeavesGradientsAloneBelowMaxNorm) {
  auto a = make_param({0, 0});
  set_grad(a, {3, 4});
  EXPECT_DOUBLE_EQ(clip_grad_norm({a}, 5.5), 5.0);
  EXPECT_EQ(values(a.grad()), (std::vector<double>{3, 4}));
}

TEST(ClipGradNorm, ScalesWhenNormIsJustAboveMaxNorm) {
  auto a = make_param({0, 0});
  set_grad(a, {3, 4});
  EXPECT_DOUBLE_EQ(clip_grad_norm({a}, 4.75), 5.0);
  const double coef = 4.75 / (5.0 + 1e-6);
  expect_near(values(a.grad()), {3 * coef, 4 * coef}, 1e-15);
}

TEST(ClipGradNorm, ZeroWithoutGradients) {
  auto a = make_param({1, 2});
  EXPECT_EQ(clip_grad_norm({a}, 1.0), 0.0);
  EXPECT_EQ(clip_grad_norm({}, 1.0), 0.0);
}

TEST(ClipGradNorm, NormOfFloat32GradientsIsAccumulatedInDouble) {
  // 2^24 + 1 ones in float32 would stall a float accumulator at 2^24.
  const int64_t n = (int64_t{1} << 24) + 1;
  autograd::Variable a(Tensor::zeros({n}), true);
  a.set_grad(Tensor::ones({n}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({a}, 1e9), std::sqrt(static_cast<double>(n)));
}

TEST(ClipGradNorm, NormDoesNotDependOnThreadCount) {
  std::vector<double> g(300007);
  for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(static_cast<double>(i) * 0.37);
  const int saved_threads = num_threads();
  std::vector<double> norms;
  for (int threads : {1, 2, 5}) {
    set_core_num_threads(threads);
    auto a = make_param(std::vector<double>(g.size()), DType::kFloat32);
    set_grad(a, g);
    norms.push_back(clip_grad_norm({a}, 1e9));
  }
  set_core_num_threads(saved_threads);
  EXPECT_EQ(norms[0], norms[1]);
  EXPECT_EQ(norms[0], norms[2]);
}

TEST(ClipGradNorm, NonFiniteNormLeavesGradientsUntouched) {
  auto a = make_param({0, 0});
  set_grad(a, {std::numeric_limits<double>::infinity(), 1.0});
  EXPECT_TRUE(std::isinf(clip_grad_norm({a}, 1.0)));
  EXPECT_EQ(values(a.grad())[1], 1.0);
}

TEST(ClipGradNorm, RejectsNegativeMaxNorm) {
  auto a = make_param({0});
  set_grad(a, {1});
  EXPECT_THROW(clip_grad_norm({a}, -1.0), ValueError);
  EXPECT_THROW(clip_grad_norm({a}, std::nan("")), ValueError);
}

}  // namespace
}  // namespace tessera::optim
