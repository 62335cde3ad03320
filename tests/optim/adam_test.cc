#include "tessera/optim/adam.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "optim_test_util.h"
#include "tessera/core/error.h"
#include "tessera/optim/adamw.h"

namespace tessera::optim {
namespace {

using testing::expect_near;
using testing::make_param;
using testing::set_grad;
using testing::thrown_message;
using testing::values;

// A scalar transcription of torch.optim.Adam / AdamW, in double.
std::vector<double> reference_adam(std::vector<double> p,
                                   const std::vector<std::vector<double>>& gs, double lr,
                                   double beta1, double beta2, double eps, double wd,
                                   bool decoupled, bool amsgrad) {
  std::vector<double> m(p.size()), v(p.size()), vmax(p.size());
  for (size_t s = 0; s < gs.size(); ++s) {
    const double t = static_cast<double>(s + 1);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = gs[s][i];
      if (decoupled) {
        p[i] *= 1 - lr * wd;
      } else {
        g += wd * p[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      vmax[i] = std::max(vmax[i], v[i]);
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = (amsgrad ? vmax[i] : v[i]) / (1 - std::pow(beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
  return p;
}

const std::vector<std::vector<double>> kAdamGrads = {{0.5, -1.0, 2.0, 0.0},
                                                     {0.25, 0.5, -1.5, 1.0},
                                                     {-0.75, 0.0, 1.0, -2.0},
                                                     {1.0, 1.0, 1.0, 1.0},
                                                     {0.1, -3.0, 0.2, 0.3}};

TEST(Adam, BiasCorrectionMakesEachStepOfAConstantGradientEqualLr) {
  // Uncorrected, the first step would be lr * 0.05 / sqrt(0.00025) = 0.316, not 0.1.
  auto p = make_param({1.0, -1.0});
  Adam opt({p}, AdamOptions{.lr = 0.1});
  set_grad(p, {0.5, -4.0});
  opt.step();
  expect_near(values(p.data()), {0.9, -0.9}, 1e-7);
  opt.step();
  opt.step();
  expect_near(values(p.data()), {0.7, -0.7}, 1e-7);
  EXPECT_EQ(opt.state(0).step, 3);
  ASSERT_EQ(opt.state(0).buffers.size(), 2u);
  // m after three steps of g: g * (1 - 0.9^3); v: g^2 * (1 - 0.999^3).
  expect_near(values(opt.state(0).buffers[0]), {0.5 * 0.271, -4.0 * 0.271}, 1e-15);
  expect_near(values(opt.state(0).buffers[1]), {0.25 * 0.002997001, 16.0 * 0.002997001}, 1e-15);
}

TEST(Adam, FirstStepMatchesHandComputedValue) {
  auto p = make_param({1.0});
  Adam opt({p}, AdamOptions{.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1});
  set_grad(p, {2.0});
  opt.step();
  // m = 1, v = 1; m_hat = 2, v_hat = 4; p = 1 - 0.1 * 2 / (2 + 0.1).
  EXPECT_NEAR(values(p.data())[0], 1.0 - 0.2 / 2.1, 1e-15);
  set_grad(p, {-1.0});
  opt.step();
  // m = 0.5 * 1 + 0.5 * -1 = 0: the step is zero whatever v is.
  EXPECT_NEAR(values(p.data())[0], 1.0 - 0.2 / 2.1, 1e-15);
}

TEST(Adam, MatchesReferenceOverChangingGradients) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start);
  Adam opt({p}, AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-6});
  for (const auto& g : kAdamGrads) {
    set_grad(p, g);
    opt.step();
  }
  expect_near(values(p.data()),
              reference_adam(start, kAdamGrads, 0.01, 0.8, 0.9, 1e-6, 0.0, false, false), 1e-14);
}

TEST(Adam, CoupledWeightDecayMatchesReference) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start);
  Adam opt({p}, AdamOptions{.lr = 0.01, .weight_decay = 0.1});
  for (const auto& g : kAdamGrads) {
    set_grad(p, g);
    opt.step();
  }
  expect_near(values(p.data()),
              reference_adam(start, kAdamGrads, 0.01, 0.9, 0.999, 1e-8, 0.1, false, false), 1e-14);
}

TEST(Adam, AmsgradUsesRunningMaxOfSecondMoment) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start);
  auto q = make_param(start);
  Adam ams({p}, AdamOptions{.lr = 0.01, .beta2 = 0.5, .amsgrad = true});
  Adam plain({q}, AdamOptions{.lr = 0.01, .beta2 = 0.5});
  for (const auto& g : kAdamGrads) {
    set_grad(p, g);
    set_grad(q, g);
    ams.step();
    plain.step();
  }
  EXPECT_EQ(ams.state(0).buffers.size(), 3u);
  expect_near(values(p.data()),
              reference_adam(start, kAdamGrads, 0.01, 0.9, 0.5, 1e-8, 0.0, false, true), 1e-14);
  // With beta2 = 0.5 the second moment falls after the large gradients, so the max matters.
  EXPECT_GT(std::abs(values(p.data())[1] - values(q.data())[1]), 1e-4);
}

TEST(Adam, Float32ParameterMatchesDoubleReference) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start, DType::kFloat32);
  Adam opt({p}, AdamOptions{.lr = 0.01, .weight_decay = 0.05});
  for (const auto& g : kAdamGrads) {
    set_grad(p, g);
    opt.step();
  }
  EXPECT_EQ(opt.state(0).buffers[0].dtype(), DType::kFloat32);
  expect_near(values(p.data()),
              reference_adam(start, kAdamGrads, 0.01, 0.9, 0.999, 1e-8, 0.05, false, false), 1e-6);
}

TEST(Adam, RejectsInvalidOptionsNamingTheValue) {
  auto p = make_param({1.0});
  EXPECT_NE(
      thrown_message<ValueError>([&] { Adam({p}, AdamOptions{.beta1 = 1.0}); }).find("beta1 1"),
      std::string::npos);
  EXPECT_NE(
      thrown_message<ValueError>([&] { Adam({p}, AdamOptions{.beta2 = -0.1}); }).find("beta2 -0.1"),
      std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] { Adam({p}, AdamOptions{.lr = -1e-3}); }).find("lr"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] { Adam({p}, AdamOptions{.eps = -1}); }).find("eps -1"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              AdamW({p}, AdamWOptions{.weight_decay = -0.01});
            }).find("AdamW: invalid weight_decay -0.01"),
            std::string::npos);
}

TEST(AdamW, DefaultsToDecoupledDecayOfOneHundredth) {
  EXPECT_EQ(AdamWOptions{}.weight_decay, 1e-2);
  EXPECT_EQ(AdamOptions{}.weight_decay, 0.0);
}

TEST(AdamW, DecoupledDecayDiffersFromAdamWithL2) {
  auto p = make_param({1.0});
  auto q = make_param({1.0});
  AdamW adamw({p}, AdamWOptions{.lr = 0.1, .weight_decay = 0.1});
  Adam adam({q}, AdamOptions{.lr = 0.1, .weight_decay = 0.1});
  set_grad(p, {0.5});
  set_grad(q, {0.5});
  adamw.step();
  adam.step();
  // AdamW: 1 * (1 - 0.01) then the unit-normalised step of 0.1.
  EXPECT_NEAR(values(p.data())[0], 0.89, 1e-7);
  // Adam + L2: the decay joins the gradient and is normalised away on the first step.
  EXPECT_NEAR(values(q.data())[0], 0.9, 1e-7);
  EXPECT_STREQ(adamw.kind(), "adamw");
  EXPECT_STREQ(adam.kind(), "adam");
}

TEST(AdamW, MatchesReferenceOverChangingGradients) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start);
  AdamW opt({p}, AdamWOptions{.lr = 0.05, .beta1 = 0.85, .weight_decay = 0.2, .amsgrad = true});
  for (const auto& g : kAdamGrads) {
    set_grad(p, g);
    opt.step();
  }
  expect_near(values(p.data()),
              reference_adam(start, kAdamGrads, 0.05, 0.85, 0.999, 1e-8, 0.2, true, true), 1e-14);
}

}  // namespace
}  // namespace tessera::optim
