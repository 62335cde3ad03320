#include "tessera/optim/adagrad.h"

#include <gtest/gtest.h>

#include <cmath>
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

TEST(Adagrad, MatchesHandComputedUpdate) {
  auto p = make_param({1.0});
  Adagrad opt({p}, AdagradOptions{.lr = 0.1});
  set_grad(p, {0.5});
  const double eps = 1e-10;  // the default, which shifts the result by 2e-11: it must be there
  opt.step();                // sum 0.25
  const double first = 1.0 - 0.1 * 0.5 / (0.5 + eps);
  EXPECT_NEAR(values(p.data())[0], first, 1e-15);
  opt.step();  // sum 0.5
  EXPECT_NEAR(values(p.data())[0], first - 0.1 * 0.5 / (std::sqrt(0.5) + eps), 1e-15);
  EXPECT_NEAR(values(opt.state(0).buffers[0])[0], 0.5, 1e-15);
}

TEST(Adagrad, LrDecayShrinksStepWithStepCount) {
  auto p = make_param({1.0});
  Adagrad opt({p}, AdagradOptions{.lr = 0.1, .lr_decay = 0.5});
  set_grad(p, {0.5});
  double expected = 1.0;
  // clr = 0.1 / (1 + (t - 1) * 0.5): 0.1, 0.1 / 1.5, 0.1 / 2.
  const double clr[] = {0.1, 0.1 / 1.5, 0.05};
  for (int t = 1; t <= 3; ++t) {
    opt.step();
    expected -= clr[t - 1] * 0.5 / (std::sqrt(0.25 * t) + 1e-10);
    EXPECT_NEAR(values(p.data())[0], expected, 1e-15) << "step " << t;
  }
  EXPECT_NEAR(expected, 0.823992, 1e-6);  // the arithmetic above, done by hand
}

TEST(Adagrad, InitialAccumulatorAndWeightDecayEnterTheSum) {
  auto p = make_param({2.0, -1.0}, DType::kFloat32);
  Adagrad opt({p},
              AdagradOptions{.lr = 0.5, .weight_decay = 0.25, .initial_accumulator_value = 1.0});
  set_grad(p, {1.0, 0.0});
  opt.step();
  // g = [1 + 0.5, 0 - 0.25]; sum = 1 + g^2.
  const double g0 = 1.5, g1 = -0.25;
  expect_near(values(p.data()),
              {2.0 - 0.5 * g0 / (std::sqrt(1 + g0 * g0) + 1e-10),
               -1.0 - 0.5 * g1 / (std::sqrt(1 + g1 * g1) + 1e-10)},
              1e-6);
  EXPECT_EQ(opt.state(0).buffers[0].dtype(), DType::kFloat32);
  expect_near(values(opt.state(0).buffers[0]), {1 + g0 * g0, 1 + g1 * g1}, 1e-6);
}

TEST(Adagrad, RejectsInvalidOptionsNamingTheValue) {
  auto p = make_param({1.0});
  EXPECT_NE(thrown_message<ValueError>([&] {
              Adagrad({p}, AdagradOptions{.lr_decay = -0.5});
            }).find("lr_decay -0.5"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Adagrad({p}, AdagradOptions{.initial_accumulator_value = -1});
            }).find("initial_accumulator_value -1"),
            std::string::npos);
  EXPECT_NE(
      thrown_message<ValueError>([&] { Adagrad({p}, AdagradOptions{.eps = -1e-10}); }).find("eps"),
      std::string::npos);
}

}  // namespace
}  // namespace tessera::optim
