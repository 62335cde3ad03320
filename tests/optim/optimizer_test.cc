#include "tessera/optim/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tessera/optim/adagrad.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/adamw.h"
#include "tessera/optim/sgd.h"

namespace tessera::optim {
namespace {

using testing::expect_near;
using testing::load;
using testing::make_param;
using testing::saved;
using testing::set_grad;
using testing::thrown_message;
using testing::values;

using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<autograd::Variable>)>;

// One factory per optimizer and option set that keeps state, for the behaviours all share.
std::vector<std::pair<std::string, Factory>> all_optimizers() {
  return {
      {"sgd_momentum",
       [](auto params) {
         return std::make_unique<Sgd>(std::move(params),
                                      SgdOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1});
       }},
      {"sgd_nesterov",
       [](auto params) {
         return std::make_unique<Sgd>(
             std::move(params),
             SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"adam",
       [](auto params) {
         return std::make_unique<Adam>(std::move(params),
                                       AdamOptions{.lr = 0.01, .weight_decay = 0.1});
       }},
      {"adam_amsgrad",
       [](auto params) {
         return std::make_unique<Adam>(std::move(params),
                                       AdamOptions{.lr = 0.01, .beta2 = 0.5, .amsgrad = true});
       }},
      {"adamw",
       [](auto params) {
         return std::make_unique<AdamW>(std::move(params), AdamWOptions{.lr = 0.01});
       }},
      {"adagrad",
       [](auto params) {
         return std::make_unique<Adagrad>(std::move(params),
                                          AdagradOptions{.lr = 0.1, .lr_decay = 0.01});
       }},
  };
}

// Gradient for step s of a parameter with n elements: varies with s and position.
std::vector<double> grad_at(int s, size_t n) {
  std::vector<double> g(n);
  for (size_t i = 0; i < n; ++i)
    g[i] = 0.3 * static_cast<double>(i + 1) * ((s + i) % 3 == 0 ? -1 : 1) + 0.05 * s;
  return g;
}

TEST(Optimizer, StepSkipsParametersWithoutGradient) {
  for (auto& [label, make] : all_optimizers()) {
    SCOPED_TRACE(label);
    auto a = make_param({1.0, 2.0});
    auto b = make_param({3.0});
    auto opt = make({a, b});
    set_grad(a, {0.5, 0.5});
    opt->step();
    opt->step();
    EXPECT_NE(values(a.data())[0], 1.0);
    EXPECT_EQ(values(b.data()), (std::vector<double>{3.0}));
    EXPECT_EQ(opt->state(0).step, 2);
    EXPECT_EQ(opt->state(1).step, 0);
    EXPECT_TRUE(opt->state(1).buffers.empty());

    // b's first update is a first step (step count 1), not a third.
    auto ref = make_param({3.0});
    auto ref_opt = make({ref});
    set_grad(b, {0.25});
    set_grad(ref, {0.25});
    opt->step();
    ref_opt->step();
    EXPECT_EQ(opt->state(1).step, 1);
    EXPECT_EQ(values(b.data()), values(ref.data()));
  }
}

TEST(Optimizer, LargeParameterGivesSameResultOnAnyThreadCount) {
  // 100003 elements: several chunks of the parallel loop, and a ragged last one.
  const size_t n = 100003;
  std::vector<double> start(n);
  for (size_t i = 0; i < n; ++i) start[i] = std::sin(static_cast<double>(i));
  const int saved_threads = num_threads();
  for (auto& [label, make] : all_optimizers()) {
    SCOPED_TRACE(label);
    std::vector<std::vector<double>> results;
    for (int threads : {1, 3}) {
      set_core_num_threads(threads);
      auto p = make_param(start, DType::kFloat32);
      auto opt = make({p});
      for (int s = 0; s < 3; ++s) {
        set_grad(p, grad_at(s, n));
        opt->step();
      }
      results.push_back(values(p.data()));
    }
    EXPECT_EQ(results[0], results[1]);
    EXPECT_NE(results[0], start);
  }
  set_core_num_threads(saved_threads);
}

TEST(Optimizer, ZeroGradMakesGradientsUndefined) {
  auto a = make_param({1.0});
  auto b = make_param({2.0});
  Sgd opt({a, b}, SgdOptions{});
  set_grad(a, {1.0});
  set_grad(b, {1.0});
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  opt.step();  // nothing to do
  EXPECT_EQ(values(a.data()), (std::vector<double>{1.0}));
}

TEST(Optimizer, SaveLoadRoundTripReproducesNextStepExactly) {
  for (auto& [label, make] : all_optimizers()) {
    for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
      SCOPED_TRACE(label + (dtype == DType::kFloat32 ? " float32" : " float64"));
      auto w = make_param({1, -2, 3, -4, 5, -6}, dtype, {2, 3}, "w");
      auto b = make_param({0.5, -0.5}, dtype, {}, "b");
      auto opt = make({w, b});
      for (int s = 0; s < 3; ++s) {
        set_grad(w, grad_at(s, 6));
        set_grad(b, grad_at(s + 7, 2));
        opt->step();
      }
      opt->set_lr(opt->lr() * 0.5);
      const std::string state = saved(*opt);

      // A fresh optimizer over copies of the parameters, given the state.
      auto w2 = make_param(values(w.data()), dtype, {2, 3});
      auto b2 = make_param(values(b.data()), dtype);
      auto opt2 = make({w2, b2});
      load(*opt2, state);
      EXPECT_EQ(opt2->lr(), opt->lr());
      EXPECT_EQ(opt2->state(0).step, 3);

      // Without the state the same step lands elsewhere, so equality below means something.
      auto w3 = make_param(values(w.data()), dtype, {2, 3});
      auto b3 = make_param(values(b.data()), dtype);
      auto opt3 = make({w3, b3});
      opt3->set_lr(opt->lr());

      for (auto* p : {&w, &w2, &w3}) set_grad(*p, grad_at(3, 6));
      for (auto* p : {&b, &b2, &b3}) set_grad(*p, grad_at(10, 2));
      opt->step();
      opt2->step();
      opt3->step();
      EXPECT_EQ(values(w2.data()), values(w.data()));
      EXPECT_EQ(values(b2.data()), values(b.data()));
      EXPECT_NE(values(w3.data()), values(w.data()));
    }
  }
}

TEST(Optimizer, StateOfFreshOptimizerLoadsAsEmpty) {
  auto w = make_param({1.0, 2.0});
  Adam opt({w}, AdamOptions{});
  const std::string state = saved(opt);
  auto w2 = make_param({1.0, 2.0});
  Adam opt2({w2}, AdamOptions{});
  set_grad(w2, {1.0, 1.0});
  opt2.step();
  load(opt2, state);
  EXPECT_EQ(opt2.state(0).step, 0);
  EXPECT_TRUE(opt2.state(0).buffers.empty());
}

TEST(Optimizer, LoadConvertsStateToParameterDtype) {
  auto w = make_param({1.0, 2.0}, DType::kFloat32);
  Adam opt({w}, AdamOptions{});
  set_grad(w, {0.5, 0.25});
  opt.step();
  auto w2 = make_param({1.0, 2.0}, DType::kFloat64);
  Adam opt2({w2}, AdamOptions{});
  load(opt2, saved(opt));
  EXPECT_EQ(opt2.state(0).buffers[0].dtype(), DType::kFloat64);
  expect_near(values(opt2.state(0).buffers[0]), values(opt.state(0).buffers[0]), 0.0);
}

// An Sgd with momentum over params, stepped once so every parameter has a buffer.
std::string stepped_sgd_state(std::vector<autograd::Variable> params) {
  Sgd opt(params, SgdOptions{.momentum = 0.9});
  for (auto& p : params) set_grad(p, std::vector<double>(static_cast<size_t>(p.numel()), 1.0));
  opt.step();
  return saved(opt);
}

TEST(Optimizer, LoadRejectsDifferentParameterCount) {
  const std::string state = stepped_sgd_state({make_param({1.0}), make_param({2.0})});
  auto a = make_param({1.0});
  Sgd opt({a}, SgdOptions{.momentum = 0.9});
  const std::string message = thrown_message<FormatError>([&] { load(opt, state); });
  EXPECT_NE(message.find("holds 2 parameters, the optimizer has 1"), std::string::npos) << message;
}

TEST(Optimizer, LoadRejectsDifferentShapeNamingTheParameter) {
  const std::string state = stepped_sgd_state({make_param({1.0}), make_param({1.0, 2.0})});
  auto a = make_param({1.0});
  auto b = make_param({1.0, 2.0, 3.0}, DType::kFloat64, {}, "fc.bias");
  Sgd opt({a, b}, SgdOptions{.momentum = 0.9});
  const std::string message = thrown_message<ShapeError>([&] { load(opt, state); });
  EXPECT_NE(message.find("parameter 1 ('fc.bias')"), std::string::npos) << message;
  EXPECT_NE(message.find("[2]"), std::string::npos) << message;

  // Unnamed: the index alone.
  auto c = make_param({1.0, 2.0, 3.0});
  Sgd opt2({a, c}, SgdOptions{.momentum = 0.9});
  EXPECT_NE(thrown_message<ShapeError>([&] { load(opt2, state); }).find("parameter 1 has shape"),
            std::string::npos);
}

TEST(Optimizer, LoadRejectsOtherOptimizerKind) {
  const std::string state = stepped_sgd_state({make_param({1.0})});
  auto a = make_param({1.0});
  Adam adam({a}, AdamOptions{});
  EXPECT_NE(thrown_message<FormatError>([&] { load(adam, state); }).find("'sgd'"),
            std::string::npos);
  AdamW adamw({a}, AdamWOptions{});
  adamw.step();
  EXPECT_THROW(load(adam, saved(adamw)), FormatError);
}

TEST(Optimizer, LoadRejectsBufferCountOfOtherOptions) {
  auto a = make_param({1.0});
  Adam ams({a}, AdamOptions{.amsgrad = true});
  set_grad(a, {1.0});
  ams.step();
  auto b = make_param({1.0});
  Adam plain({b}, AdamOptions{});
  const std::string message = thrown_message<FormatError>([&] { load(plain, saved(ams)); });
  EXPECT_NE(message.find("parameter 0: 3 state buffers"), std::string::npos) << message;
}

TEST(Optimizer, TruncatedStateThrowsFormatErrorAndChangesNothing) {
  auto a = make_param({1.0, 2.0});
  Adam opt({a}, AdamOptions{.lr = 0.5});
  set_grad(a, {1.0, 1.0});
  opt.step();
  const std::string state = saved(opt);

  auto b = make_param({1.0, 2.0});
  Adam opt2({b}, AdamOptions{.lr = 0.1});
  // Every cut, from inside the kind tag to the last byte of the last buffer.
  for (size_t cut = 1; cut < state.size(); cut += 7) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(load(opt2, state.substr(0, cut)), FormatError);
    EXPECT_EQ(opt2.state(0).step, 0);
    EXPECT_EQ(opt2.lr(), 0.1);
  }
  EXPECT_THROW(load(opt2, state.substr(0, state.size() - 1)), FormatError);
  EXPECT_EQ(opt2.state(0).step, 0);
}

TEST(Optimizer, GradientShapeMismatchThrowsBeforeAnyUpdate) {
  auto a = make_param({1.0});
  auto b = make_param({1.0, 2.0}, DType::kFloat64, {}, "b");
  Sgd opt({a, b}, SgdOptions{});
  set_grad(a, {1.0});
  b.set_grad(Tensor::ones({3}, DType::kFloat64));
  const std::string message = thrown_message<ShapeError>([&] { opt.step(); });
  EXPECT_NE(message.find("parameter 1 ('b')"), std::string::npos) << message;
  EXPECT_EQ(values(a.data()), (std::vector<double>{1.0}));
  EXPECT_EQ(opt.state(0).step, 0);
}

TEST(Optimizer, StepRejectsParameterReplacedByAnotherShape) {
  auto a = make_param({1.0, 2.0}, DType::kFloat64, {}, "w");
  Adam opt({a}, AdamOptions{});
  set_grad(a, {1.0, 1.0});
  opt.step();
  // The moments were made for [2]; updating a [4] parameter with them would overrun them.
  a.set_data(Tensor::zeros({4}, DType::kFloat64));
  set_grad(a, {1.0, 1.0, 1.0, 1.0});
  const std::string message = thrown_message<ShapeError>([&] { opt.step(); });
  EXPECT_NE(message.find("parameter 0 ('w') is now float64 [4]"), std::string::npos) << message;
}

TEST(Optimizer, GradientDtypeMismatchThrows) {
  auto a = make_param({1.0});
  Sgd opt({a}, SgdOptions{});
  a.set_grad(Tensor::ones({1}, DType::kFloat32));
  EXPECT_THROW(opt.step(), DTypeError);
}

TEST(Optimizer, RejectsBadParameterLists) {
  EXPECT_NE(thrown_message<ValueError>([] { Sgd({}, SgdOptions{}); }).find("empty"),
            std::string::npos);
  autograd::Variable ints(Tensor::zeros({2}, DType::kInt64));
  ints.set_name("idx");
  EXPECT_NE(thrown_message<DTypeError>([&] {
              Sgd({make_param({1.0}), ints}, SgdOptions{});
            }).find("parameter 1 ('idx') is int64"),
            std::string::npos);
  auto a = make_param({1.0});
  EXPECT_NE(thrown_message<ValueError>([&] {
              Adam({a, a}, AdamOptions{});
            }).find("repeats"),
            std::string::npos);
  autograd::Variable strided(Tensor::zeros({2, 3}, DType::kFloat64).t(), true);
  EXPECT_NE(thrown_message<ValueError>([&] {
              Adagrad({strided}, AdagradOptions{});
            }).find("not contiguous"),
            std::string::npos);
  EXPECT_THROW(Sgd({autograd::Variable()}, SgdOptions{}), ValueError);
}

TEST(Optimizer, StateIndexOutOfRangeThrowsIndexError) {
  auto a = make_param({1.0});
  Sgd opt({a}, SgdOptions{});
  EXPECT_THROW((void)opt.state(1), IndexError);
}

TEST(Optimizer, SetLrRejectsNegative) {
  auto a = make_param({1.0});
  Sgd opt({a}, SgdOptions{});
  EXPECT_THROW(opt.set_lr(-1.0), ValueError);
  EXPECT_EQ(opt.lr(), 0.1);
}

}  // namespace
}  // namespace tessera::optim
