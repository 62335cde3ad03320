#include "tessera/optim/sgd.h"

#include <gtest/gtest.h>

#include <vector>

#include "optim_test_util.h"
#include "tessera/core/error.h"

namespace tessera::optim {
namespace {

using testing::expect_near;
using testing::make_param;
using testing::set_grad;
using testing::thrown_message;
using testing::values;

TEST(Sgd, PlainStepMovesAgainstGradient) {
  auto p = make_param({1.0, -2.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1});
  set_grad(p, {0.5, 1.0});
  opt.step();
  expect_near(values(p.data()), {0.95, -2.1}, 1e-15);
  opt.step();
  opt.step();
  expect_near(values(p.data()), {0.85, -2.3}, 1e-14);
  // Plain SGD keeps no buffer.
  EXPECT_TRUE(opt.state(0).buffers.empty());
  EXPECT_EQ(opt.state(0).step, 3);
}

TEST(Sgd, MomentumMatchesHandComputedUpdate) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1, .momentum = 0.9});
  set_grad(p, {0.5});
  // buf: 0.5 (first step takes d as is), 0.95, 1.355.
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.95, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.855, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.7195, 1e-15);
  ASSERT_EQ(opt.state(0).buffers.size(), 1u);
  EXPECT_NEAR(values(opt.state(0).buffers[0])[0], 1.355, 1e-15);
}

TEST(Sgd, DampeningSparesTheFirstStep) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  set_grad(p, {0.5});
  // buf: 0.5 (undamped clone), 0.9 * 0.5 + 0.5 * 0.5 = 0.7, 0.9 * 0.7 + 0.25 = 0.88.
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.95, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.88, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.792, 1e-15);
}

TEST(Sgd, NesterovMatchesHandComputedUpdate) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  set_grad(p, {0.5});
  // d + 0.9 * buf with buf 0.5, 0.95, 1.355: steps of 0.095, 0.1355, 0.17195.
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.905, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.7695, 1e-15);
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.59755, 1e-15);
}

TEST(Sgd, WeightDecayAddsL2TermToGradient) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1, .weight_decay = 0.1});
  set_grad(p, {0.5});
  opt.step();  // d = 0.5 + 0.1 * 1
  EXPECT_NEAR(values(p.data())[0], 0.94, 1e-15);
  opt.step();  // d = 0.5 + 0.1 * 0.94
  EXPECT_NEAR(values(p.data())[0], 0.8806, 1e-15);
}

// A scalar transcription of torch.optim.SGD's loop, in double.
std::vector<double> reference_sgd(std::vector<double> p, const std::vector<std::vector<double>>& gs,
                                  double lr, double momentum, double dampening, double wd,
                                  bool nesterov) {
  std::vector<double> buf(p.size());
  for (size_t t = 0; t < gs.size(); ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double d = gs[t][i] + wd * p[i];
      if (momentum != 0) {
        buf[i] = t == 0 ? d : momentum * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
  return p;
}

const std::vector<std::vector<double>> kSgdGrads = {
    {0.5, -1.0, 2.0, 0.0}, {0.25, 0.5, -1.5, 1.0}, {-0.75, 0.0, 1.0, -2.0}, {1.0, 1.0, 1.0, 1.0}};

TEST(Sgd, NesterovWithWeightDecayMatchesReferenceOverChangingGradients) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start);
  Sgd opt({p}, SgdOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true});
  for (const auto& g : kSgdGrads) {
    set_grad(p, g);
    opt.step();
  }
  expect_near(values(p.data()), reference_sgd(start, kSgdGrads, 0.05, 0.8, 0.0, 0.01, true), 1e-14);
}

TEST(Sgd, Float32ParameterKeepsFloat32StateAndMatchesDoubleReference) {
  const std::vector<double> start = {1.0, -0.5, 0.25, 2.0};
  auto p = make_param(start, DType::kFloat32);
  Sgd opt({p}, SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  for (const auto& g : kSgdGrads) {
    set_grad(p, g);
    opt.step();
  }
  EXPECT_EQ(p.data().dtype(), DType::kFloat32);
  ASSERT_EQ(opt.state(0).buffers.size(), 1u);
  EXPECT_EQ(opt.state(0).buffers[0].dtype(), DType::kFloat32);
  expect_near(values(p.data()), reference_sgd(start, kSgdGrads, 0.05, 0.9, 0.1, 0.01, false), 1e-6);
}

TEST(Sgd, SetLrTakesEffectOnNextStep) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.1});
  opt.set_lr(0.5);
  EXPECT_EQ(opt.lr(), 0.5);
  set_grad(p, {1.0});
  opt.step();
  EXPECT_NEAR(values(p.data())[0], 0.5, 1e-15);
}

TEST(Sgd, UpdatesMultiDimensionalParameterInPlace) {
  auto p = make_param({1, 2, 3, 4, 5, 6}, DType::kFloat64, {2, 3});
  Tensor alias = p.data();  // shares storage: the update must be visible through it
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  set_grad(p, {1, 1, 1, 1, 1, 1});
  opt.step();
  expect_near(values(alias), {0, 1, 2, 3, 4, 5}, 0.0);
}

TEST(Sgd, RejectsInvalidOptionsNamingTheValue) {
  auto p = make_param({1.0});
  EXPECT_NE(thrown_message<ValueError>([&] { Sgd({p}, SgdOptions{.lr = -0.1}); }).find("-0.1"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Sgd({p}, SgdOptions{.momentum = -0.5});
            }).find("momentum -0.5"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Sgd({p}, SgdOptions{.weight_decay = -1});
            }).find("weight_decay -1"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Sgd({p}, SgdOptions{.momentum = 0, .nesterov = true});
            }).find("nesterov"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Sgd({p}, SgdOptions{.momentum = 0.9, .dampening = 0.1, .nesterov = true});
            }).find("dampening 0.1"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::optim
