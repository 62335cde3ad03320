#include "tessera/optim/lr_scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "optim_test_util.h"
#include "tessera/core/error.h"
#include "tessera/optim/cosine_lr.h"
#include "tessera/optim/linear_warmup.h"
#include "tessera/optim/sgd.h"
#include "tessera/optim/step_lr.h"

namespace tessera::optim {
namespace {

using testing::load;
using testing::make_param;
using testing::saved;
using testing::thrown_message;

// The lr at t = 0 (after construction) and after each of `steps` step() calls; checks the
// optimizer agrees with the schedule every time.
std::vector<double> lr_sequence(LrScheduler& schedule, const Optimizer& opt, int steps) {
  std::vector<double> lrs = {opt.lr()};
  EXPECT_EQ(schedule.lr(), opt.lr());
  for (int i = 0; i < steps; ++i) {
    schedule.step();
    EXPECT_EQ(schedule.lr(), opt.lr());
    lrs.push_back(opt.lr());
  }
  return lrs;
}

void expect_sequence(const std::vector<double>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t t = 0; t < actual.size(); ++t)
    EXPECT_NEAR(actual[t], expected[t], 1e-15) << "t=" << t;
}

TEST(StepLr, DecaysByGammaEveryStepSize) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  StepLr schedule(opt, 2, 0.5);
  expect_sequence(lr_sequence(schedule, opt, 5), {1.0, 1.0, 0.5, 0.5, 0.25, 0.25});
  EXPECT_EQ(schedule.step_count(), 5);
}

TEST(CosineLr, FollowsClosedFormFromBaseToEtaMin) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  CosineLr schedule(opt, 4, 0.1);
  const double c = std::cos(std::numbers::pi / 4);
  expect_sequence(lr_sequence(schedule, opt, 4),
                  {1.0, 0.1 + 0.9 * (1 + c) / 2, 0.55, 0.1 + 0.9 * (1 - c) / 2, 0.1});
}

TEST(CosineLr, PastTMaxRisesAgainAsPyTorch) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  CosineLr schedule(opt, 2);
  EXPECT_NEAR(schedule.lr_at(2), 0.0, 1e-15);
  EXPECT_NEAR(schedule.lr_at(3), 0.5, 1e-15);
  EXPECT_NEAR(schedule.lr_at(4), 1.0, 1e-15);
}

TEST(LinearWarmup, RampsFromStartFactorToBase) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.3});
  LinearWarmup schedule(opt, 3);
  // base * (1/3 + (2/3) * t / 3), then base.
  expect_sequence(lr_sequence(schedule, opt, 5), {0.1, 0.3 * 5 / 9, 0.3 * 7 / 9, 0.3, 0.3, 0.3});
}

TEST(LinearWarmup, CustomStartFactor) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  LinearWarmup schedule(opt, 4, nullptr, 0.2);
  expect_sequence(lr_sequence(schedule, opt, 4), {0.2, 0.4, 0.6, 0.8, 1.0});
}

TEST(LinearWarmup, HandsOverToCosineAfterWarmup) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.3});
  auto cosine = std::make_unique<CosineLr>(opt, 2, 0.0);
  LinearWarmup schedule(opt, 3, std::move(cosine));
  EXPECT_EQ(schedule.base_lr(), 0.3);
  // Warmup for t < 3, then the cosine restarted at 0: 0.3, 0.15, 0.
  expect_sequence(lr_sequence(schedule, opt, 5), {0.1, 0.3 * 5 / 9, 0.3 * 7 / 9, 0.3, 0.15, 0.0});
}

TEST(LrScheduler, SaveLoadRestoresCounterAndNextLr) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 0.3});
  LinearWarmup schedule(opt, 3, std::make_unique<CosineLr>(opt, 4, 0.01));
  for (int i = 0; i < 4; ++i) schedule.step();
  const std::string state = saved(schedule);
  schedule.step();
  const double next = opt.lr();

  auto q = make_param({1.0});
  Sgd opt2({q}, SgdOptions{.lr = 0.3});
  LinearWarmup restored(opt2, 3, std::make_unique<CosineLr>(opt2, 4, 0.01));
  load(restored, state);
  EXPECT_EQ(restored.step_count(), 4);
  EXPECT_EQ(opt2.lr(), schedule.lr_at(4));  // load sets the optimizer's lr
  restored.step();
  EXPECT_EQ(opt2.lr(), next);
}

TEST(LrScheduler, LoadRejectsOtherKindOrShape) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  StepLr step(opt, 2);
  CosineLr cosine(opt, 4);
  LinearWarmup bare(opt, 2);
  LinearWarmup chained(opt, 2, std::make_unique<StepLr>(opt, 3));
  EXPECT_NE(thrown_message<FormatError>([&] { load(cosine, saved(step)); }).find("'step_lr'"),
            std::string::npos);
  EXPECT_NE(thrown_message<FormatError>([&] { load(chained, saved(bare)); }).find("following"),
            std::string::npos);
  std::string state = saved(step);
  state.resize(state.size() - 3);
  EXPECT_THROW(load(step, state), FormatError);
}

TEST(LrScheduler, RejectsInvalidArguments) {
  auto p = make_param({1.0});
  Sgd opt({p}, SgdOptions{.lr = 1.0});
  EXPECT_NE(thrown_message<ValueError>([&] { StepLr(opt, 0); }).find("step_size 0"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] { CosineLr(opt, 0); }).find("t_max 0"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] { CosineLr(opt, 5, -0.1); }).find("eta_min -0.1"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] { LinearWarmup(opt, 0); }).find("warmup_steps 0"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              LinearWarmup(opt, 5, nullptr, 0.0);
            }).find("start_factor 0"),
            std::string::npos);
  EXPECT_NE(thrown_message<ValueError>([&] {
              LinearWarmup(opt, 5, nullptr, 1.5);
            }).find("start_factor 1.5"),
            std::string::npos);
  auto q = make_param({1.0});
  Sgd other({q}, SgdOptions{});
  EXPECT_NE(thrown_message<ValueError>([&] {
              LinearWarmup(opt, 5, std::make_unique<CosineLr>(other, 10));
            }).find("another optimizer"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::optim
