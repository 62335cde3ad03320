#include "parallel/ps/row_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/adagrad.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/sgd.h"
#include "tessera/tensor/tensor.h"

namespace tessera::parallel::ps {
namespace {

using Kind = OptimizerSpec::Kind;

// Gradients of a few steps, different each step.
std::vector<std::vector<float>> gradients(int steps, int n) {
  std::vector<std::vector<float>> out(steps, std::vector<float>(n));
  for (int s = 0; s < steps; ++s) {
    for (int i = 0; i < n; ++i) out[s][i] = std::sin(1.0f + s * 0.7f + i * 1.3f);
  }
  return out;
}

// The server's rule over `steps` steps against tessera's (PyTorch-equivalent) optimizer.
template <typename MakeOptimizer>
void expect_same_as_optim(const OptimizerSpec& spec, float lr, MakeOptimizer make) {
  constexpr int kN = 7;
  constexpr int kSteps = 5;
  const auto grads = gradients(kSteps, kN);
  std::vector<float> w(kN);
  for (int i = 0; i < kN; ++i) w[i] = 0.1f * i - 0.3f;
  std::vector<float> state(kN * state_slots(spec));
  init_state(spec, state.data(), kN);

  autograd::Variable p(Tensor::from_vector(w, Shape{kN}), true);
  auto opt = make(std::vector<autograd::Variable>{p});
  for (int s = 0; s < kSteps; ++s) {
    apply_update(spec, lr, s + 1, w.data(), state.data(), grads[s].data(), kN);
    p.set_grad(Tensor::from_vector(grads[s], Shape{kN}));
    opt->step();
  }
  const std::vector<float> expected = p.data().to_vector<float>();
  for (int i = 0; i < kN; ++i) EXPECT_NEAR(w[i], expected[i], 1e-6f) << "element " << i;
}

TEST(PsRowOptimizer, SgdWithMomentumMatchesTheOptimizer) {
  expect_same_as_optim(
      {.kind = Kind::kSgd, .momentum = 0.9f, .weight_decay = 0.01f}, 0.1f, [](auto params) {
        return std::make_unique<optim::Sgd>(
            params, optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
      });
}

TEST(PsRowOptimizer, AdagradMatchesTheOptimizer) {
  expect_same_as_optim({.kind = Kind::kAdagrad, .eps = 1e-10f}, 0.05f, [](auto params) {
    return std::make_unique<optim::Adagrad>(params, optim::AdagradOptions{.lr = 0.05});
  });
}

TEST(PsRowOptimizer, AdamMatchesTheOptimizer) {
  expect_same_as_optim({.kind = Kind::kAdam}, 0.01f, [](auto params) {
    return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = 0.01});
  });
}

TEST(PsRowOptimizer, FtrlFollowsTheClosedFormAndL1GivesExactZeros) {
  const OptimizerSpec spec{.kind = Kind::kFtrl, .ftrl_beta = 1.0f, .l1 = 0.5f, .l2 = 0.1f};
  ASSERT_EQ(state_slots(spec), 2);
  std::vector<float> w = {0.0f, 0.0f};
  std::vector<float> state(4, 0.0f);
  const std::vector<float> g = {2.0f, 0.3f};
  const float lr = 0.1f;
  apply_update(spec, lr, 1, w.data(), state.data(), g.data(), 2);
  // z = g (w was 0), n = g^2; |z| <= l1 gives 0, else -(z - l1) / ((beta + sqrt(n)) / lr + l2).
  EXPECT_FLOAT_EQ(w[0], -(2.0f - 0.5f) / ((1.0f + 2.0f) / lr + 0.1f));
  EXPECT_EQ(w[1], 0.0f);
  EXPECT_FLOAT_EQ(state[0], 2.0f);   // z
  EXPECT_FLOAT_EQ(state[3], 0.09f);  // n
}

}  // namespace
}  // namespace tessera::parallel::ps
