// Registers a gradient check for every op in autograd/functions.h (shapes, broadcasting, a
// non-contiguous input) and runs them all through the shared driver, in float64 and float32.
// Also checks that the driver can fail.

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/autograd/functions.h"
#include "tessera/autograd/node.h"
#include "tessera/tensor/elementwise.h"
#include "testing/gradcheck.h"

namespace tessera::autograd {
namespace {

using testing::GradcheckCase;
using testing::InputSpec;
using testing::Layout;
using testing::register_gradcheck;
using testing::Values;
using Vars = std::vector<Variable>;

constexpr Layout kT = Layout::kTransposed;
constexpr Layout kS = Layout::kStrided;

InputSpec in(Shape shape, Layout layout = Layout::kContiguous, Values values = Values::kNormal) {
  return InputSpec{.shape = std::move(shape), .layout = layout, .values = values};
}

InputSpec constant(Shape shape, Values values = Values::kNormal) {
  return InputSpec{.shape = std::move(shape), .requires_grad = false, .values = values};
}

void add_case(std::string name, std::vector<InputSpec> inputs, testing::GradcheckFn fn) {
  register_gradcheck(GradcheckCase{std::move(name), std::move(inputs), std::move(fn)});
}

Tensor labels64(std::vector<int64_t> values) {
  Shape shape{static_cast<int64_t>(values.size())};
  return Tensor::from_vector(values, shape);
}

void register_binary_cases() {
  struct Op {
    const char* name;
    Variable (*fn)(const Variable&, const Variable&);
    Values rhs;  // div needs denominators away from zero
  };
  const Op ops[] = {{"add", add, Values::kNormal},
                    {"sub", sub, Values::kNormal},
                    {"mul", mul, Values::kNormal},
                    {"div", div, Values::kPositive}};
  for (const Op& op : ops) {
    auto f = [fn = op.fn](const Vars& v) { return fn(v[0], v[1]); };
    std::string n = op.name;
    add_case(n + "_same_shape", {in({3, 4}), in({3, 4}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_broadcast_row", {in({3, 4}), in({4}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_broadcast_row_lhs", {in({4}), in({3, 4}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_broadcast_both", {in({3, 1}), in({1, 4}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_broadcast_3d", {in({2, 3, 4}), in({3, 1}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_broadcast_scalar", {in({2, 3}), in({}, Layout::kContiguous, op.rhs)}, f);
    add_case(n + "_transposed_and_strided", {in({3, 4}, kT), in({3, 4}, kS, op.rhs)}, f);
    add_case(n + "_strided_broadcast", {in({2, 3, 4}, kT), in({3, 4}, kS, op.rhs)}, f);
    add_case(n + "_rhs_constant", {in({3, 4}), constant({3, 4}, op.rhs)}, f);
  }
  // One leaf used twice in the same op: both gradient contributions must add up.
  add_case("mul_same_leaf_twice", {in({3, 4})}, [](const Vars& v) { return mul(v[0], v[0]); });
  add_case("div_same_leaf_twice", {in({3, 4}, Layout::kContiguous, Values::kPositive)},
           [](const Vars& v) { return div(add_scalar(v[0], 1.0), v[0]); });
}

void register_unary_cases() {
  struct Op {
    const char* name;
    std::function<Variable(const Variable&)> fn;
    Values values;
  };
  const std::vector<Op> ops = {
      {"neg", [](const Variable& a) { return neg(a); }, Values::kNormal},
      {"add_scalar", [](const Variable& a) { return add_scalar(a, 2.5); }, Values::kNormal},
      {"mul_scalar", [](const Variable& a) { return mul_scalar(a, -1.5); }, Values::kNormal},
      {"pow_scalar_2", [](const Variable& a) { return pow_scalar(a, 2.0); }, Values::kNormal},
      {"pow_scalar_3", [](const Variable& a) { return pow_scalar(a, 3.0); }, Values::kNormal},
      {"pow_scalar_half", [](const Variable& a) { return pow_scalar(a, 0.5); }, Values::kPositive},
      {"pow_scalar_negative", [](const Variable& a) { return pow_scalar(a, -1.5); },
       Values::kPositive},
      {"exp", [](const Variable& a) { return exp(a); }, Values::kNormal},
      {"log", [](const Variable& a) { return log(a); }, Values::kPositive},
      {"sqrt", [](const Variable& a) { return sqrt(a); }, Values::kPositive},
      {"tanh", [](const Variable& a) { return tanh(a); }, Values::kNormal},
      {"sigmoid", [](const Variable& a) { return sigmoid(a); }, Values::kNormal},
      {"relu", [](const Variable& a) { return relu(a); }, Values::kAwayFromZero},
      {"gelu", [](const Variable& a) { return gelu(a); }, Values::kNormal},
  };
  for (const Op& op : ops) {
    auto f = [fn = op.fn](const Vars& v) { return fn(v[0]); };
    std::string n = op.name;
    add_case(n, {in({3, 4}, Layout::kContiguous, op.values)}, f);
    add_case(n + "_transposed", {in({2, 3, 4}, kT, op.values)}, f);
    add_case(n + "_strided", {in({5, 2}, kS, op.values)}, f);
  }
  // sigmoid and tanh saturate; their gradients stay right far out.
  add_case("sigmoid_saturated",
           {InputSpec{.shape = {4}, .fixed = Tensor::from_vector<double>({-12, -4, 4, 12}, {4})}},
           [](const Vars& v) { return sigmoid(v[0]); });
}

void register_matmul_cases() {
  auto mm = [](const Vars& v) { return matmul(v[0], v[1]); };
  add_case("matmul", {in({3, 4}), in({4, 5})}, mm);
  add_case("matmul_transposed_lhs", {in({3, 4}, kT), in({4, 5})}, mm);
  add_case("matmul_batched", {in({2, 3, 4}), in({2, 4, 5})}, mm);
  add_case("matmul_batched_transposed_rhs", {in({2, 3, 4}), in({2, 4, 5}, kT)}, mm);
  add_case("matmul_transposed_rhs", {in({3, 4}), in({4, 5}, kT)}, mm);
  add_case("matmul_both_transposed", {in({3, 4}, kT), in({4, 5}, kT)}, mm);
  add_case("matmul_strided", {in({3, 4}, kS), in({4, 5}, kS)}, mm);
  add_case("matmul_vector_shapes", {in({1, 4}), in({4, 1})}, mm);
  add_case("matmul_constant_rhs", {in({3, 4}), constant({4, 2})}, mm);

  auto lin = [](const Vars& v) { return linear(v[0], v[1], v[2]); };
  auto lin_no_bias = [](const Vars& v) { return linear(v[0], v[1], Variable()); };
  add_case("linear", {in({3, 4}), in({5, 4}), in({5})}, lin);
  add_case("linear_no_bias", {in({3, 4}), in({5, 4})}, lin_no_bias);
  add_case("linear_transposed_weight", {in({3, 4}, kS), in({5, 4}, kT), in({5}, kS)}, lin);
  add_case("linear_constant_input", {constant({2, 3}), in({4, 3}), in({4})}, lin);
}

void register_shape_cases() {
  add_case("sum_all", {in({2, 3, 4})}, [](const Vars& v) { return sum(v[0]); });
  add_case("sum_axis0", {in({2, 3, 4})}, [](const Vars& v) { return sum(v[0], {0}); });
  add_case("sum_last_keepdim", {in({2, 3, 4})},
           [](const Vars& v) { return sum(v[0], {-1}, true); });
  add_case("sum_two_axes", {in({2, 3, 4})}, [](const Vars& v) { return sum(v[0], {0, 2}); });
  add_case("sum_transposed", {in({3, 4}, kT)}, [](const Vars& v) { return sum(v[0], {1}); });
  add_case("sum_size_one_axis", {in({3, 1, 2})}, [](const Vars& v) { return sum(v[0], {1}); });
  add_case("mean_all", {in({3, 4}, kS)}, [](const Vars& v) { return mean(v[0]); });
  add_case("mean_axis_keepdim", {in({2, 3, 4})},
           [](const Vars& v) { return mean(v[0], {1}, true); });
  add_case("mean_two_axes_transposed", {in({2, 3, 4}, kT)}, [](const Vars& v) {
    return mean(v[0], {0, -1});
  });

  add_case("reshape", {in({3, 4})}, [](const Vars& v) { return reshape(v[0], {2, 6}); });
  add_case("reshape_infer", {in({2, 3, 4})}, [](const Vars& v) { return reshape(v[0], {-1, 4}); });
  add_case("reshape_transposed", {in({3, 4}, kT)},
           [](const Vars& v) { return reshape(v[0], {12}); });
  add_case("transpose", {in({3, 4})}, [](const Vars& v) { return transpose(v[0], 0, 1); });
  add_case("transpose_3d", {in({2, 3, 4}, kS)},
           [](const Vars& v) { return transpose(v[0], 0, 2); });
  add_case("slice", {in({3, 5})}, [](const Vars& v) { return slice(v[0], 1, 1, 4); });
  add_case("slice_step", {in({3, 7})}, [](const Vars& v) { return slice(v[0], 1, 0, 7, 3); });
  add_case("slice_negative_start", {in({5, 2}, kT)},
           [](const Vars& v) { return slice(v[0], 0, -2, 2); });
  add_case("slice_of_strided", {in({4, 6}, kS)},
           [](const Vars& v) { return slice(v[0], 0, 1, 4, 2); });
}

void register_softmax_cases() {
  add_case("softmax_last", {in({3, 4})}, [](const Vars& v) { return softmax(v[0], -1); });
  add_case("softmax_axis0", {in({3, 4, 2})}, [](const Vars& v) { return softmax(v[0], 0); });
  add_case("softmax_axis1_transposed", {in({2, 3, 4}, kT)},
           [](const Vars& v) { return softmax(v[0], 1); });
  add_case("log_softmax_last", {in({3, 4})}, [](const Vars& v) { return log_softmax(v[0], 1); });
  add_case("log_softmax_axis0", {in({3, 4, 2})},
           [](const Vars& v) { return log_softmax(v[0], 0); });
  add_case("log_softmax_strided", {in({3, 4}, kS)},
           [](const Vars& v) { return log_softmax(v[0], -1); });
}

void register_conv_cases() {
  auto conv = [](Conv2dOptions o, bool bias) {
    return [o, bias](const Vars& v) { return conv2d(v[0], v[1], bias ? v[2] : Variable(), o); };
  };
  add_case("conv2d_stride2_pad1", {in({2, 2, 5, 5}), in({3, 2, 3, 3}), in({3})},
           conv({.stride = 2, .padding = 1}, true));
  add_case("conv2d_stride2_pad1_no_bias", {in({1, 2, 5, 5}), in({3, 2, 3, 3})},
           conv({.stride = 2, .padding = 1}, false));
  add_case("conv2d_plain", {in({1, 2, 4, 4}), in({3, 2, 3, 3}), in({3})},
           conv({.stride = 1, .padding = 0}, true));
  add_case("conv2d_rectangular_kernel", {in({1, 2, 4, 5}), in({2, 2, 2, 3}), in({2})},
           conv({.stride = 1, .padding = 1}, true));
  add_case("conv2d_transposed_input", {in({1, 2, 5, 4}, kT), in({2, 2, 3, 3}, kS), in({2})},
           conv({.stride = 2, .padding = 1}, true));
  add_case("conv2d_constant_input", {constant({1, 2, 4, 4}), in({2, 2, 3, 3}), in({2})},
           conv({.stride = 1, .padding = 1}, true));

  auto pool = [](Pool2dOptions o) { return [o](const Vars& v) { return max_pool2d(v[0], o); }; };
  add_case("max_pool2d_k2", {in({2, 2, 4, 4}, Layout::kContiguous, Values::kDistinct)},
           pool({.kernel = 2}));
  add_case("max_pool2d_k3_s2_p1", {in({1, 2, 5, 5}, Layout::kContiguous, Values::kDistinct)},
           pool({.kernel = 3, .stride = 2, .padding = 1}));
  add_case("max_pool2d_k3_s2_p1_even", {in({2, 1, 6, 6}, kT, Values::kDistinct)},
           pool({.kernel = 3, .stride = 2, .padding = 1}));
  add_case("max_pool2d_k2_strided", {in({1, 2, 4, 6}, kS, Values::kDistinct)}, pool({.kernel = 2}));
}

void register_embedding_and_dropout_cases() {
  // Repeated indices: rows 0 and 2 collect several gradients; rows 1 and 3 none.
  Tensor idx = Tensor::from_vector<int64_t>({0, 2, 2, 4, 0, 0}, {2, 3});
  add_case("embedding_repeated_indices", {in({5, 3})},
           [idx](const Vars& v) { return embedding(v[0], idx); });
  Tensor idx32 = Tensor::from_vector<int32_t>({3, 1, 3, 0}, {4});
  add_case("embedding_int32_transposed_weight", {in({4, 3}, kT)},
           [idx32](const Vars& v) { return embedding(v[0], idx32); });

  // The mask depends only on the generator, so a generator seeded alike in every evaluation gives
  // the same mask and dropout is linear in its input.
  add_case("dropout", {in({4, 5})}, [](const Vars& v) {
    Generator gen(7);
    return dropout(v[0], 0.4, gen);
  });
  add_case("dropout_strided", {in({3, 4}, kS)}, [](const Vars& v) {
    Generator gen(11);
    return dropout(v[0], 0.25, gen);
  });
  add_case("dropout_zero", {in({3, 4})}, [](const Vars& v) {
    Generator gen(3);
    return dropout(v[0], 0.0, gen);
  });
}

void register_loss_cases() {
  Tensor labels = labels64({1, 0, 4, 4});
  add_case("cross_entropy", {in({4, 5})},
           [labels](const Vars& v) { return cross_entropy(v[0], labels); });
  add_case("cross_entropy_label_smoothing", {in({4, 5})},
           [labels](const Vars& v) { return cross_entropy(v[0], labels, 0.1); });
  Tensor labels32 = Tensor::from_vector<int32_t>({2, 0, 1}, {3});
  add_case("cross_entropy_int32_transposed", {in({3, 4}, kT)},
           [labels32](const Vars& v) { return cross_entropy(v[0], labels32, 0.2); });
  add_case("cross_entropy_large_logits",
           {InputSpec{.shape = {2, 3},
                      .fixed = Tensor::from_vector<double>({50, -50, 49, 0, 30, 31}, {2, 3})}},
           [](const Vars& v) {
             return cross_entropy(v[0], labels64({2, 1}));
           });

  auto mse = [](const Vars& v) { return mse_loss(v[0], v[1]); };
  add_case("mse_loss", {in({3, 4}), in({3, 4})}, mse);
  add_case("mse_loss_constant_target", {in({3, 4}, kT), constant({3, 4})}, mse);

  auto bce = [](const Vars& v) { return binary_cross_entropy_with_logits(v[0], v[1]); };
  add_case("bce_with_logits", {in({3, 4}), in({3, 4}, Layout::kContiguous, Values::kProbability)},
           bce);
  add_case("bce_with_logits_strided", {in({3, 4}, kS), in({3, 4}, kT, Values::kProbability)}, bce);
  add_case("bce_with_logits_large_logits",
           {InputSpec{.shape = {4}, .fixed = Tensor::from_vector<double>({-30, -8, 8, 30}, {4})},
            in({4}, Layout::kContiguous, Values::kProbability)},
           bce);
}

// Composites: the gradients of ops chained together, and of a leaf used in several places.
void register_composite_cases() {
  // Layer normalisation written out from primitives, and the library's layer_norm.
  add_case("layer_norm_composite", {in({3, 5}), in({5}), in({5})}, [](const Vars& v) {
    Variable x = v[0];
    Variable centred = x - mean(x, {-1}, true);
    Variable var = mean(pow_scalar(centred, 2.0), {-1}, true);
    return centred / sqrt(add_scalar(var, 1e-5)) * v[1] + v[2];
  });
  auto ln = [](const Vars& v) { return layer_norm(v[0], v[1], v[2], 1e-5); };
  add_case("layer_norm", {in({3, 5}), in({5}), in({5})}, ln);
  add_case("layer_norm_3d_transposed", {in({2, 4, 3}, kT), in({3}, kS), in({3})}, ln);

  // Batch normalisation: training (batch statistics; running statistics, when given, are
  // updated but do not change the output) and evaluation (running statistics).
  add_case("batch_norm_train_2d", {in({4, 3}), in({3}), in({3})}, [](const Vars& v) {
    Tensor running_mean = Tensor::zeros({3}, v[0].dtype());
    Tensor running_var = Tensor::ones({3}, v[0].dtype());
    return batch_norm(v[0], v[1], v[2], running_mean, running_var, true, 0.1, 1e-5);
  });
  add_case("batch_norm_train_4d", {in({2, 3, 2, 2}, kT), in({3}), in({3})}, [](const Vars& v) {
    return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true, 0.1, 1e-5);
  });
  // Statistics over several processes: here the batch and an identical copy of it on another
  // process, so the sums double and the count too.
  add_case("batch_norm_train_across_4d", {in({2, 3, 2, 2}), in({3}), in({3})}, [](const Vars& v) {
    const BatchStatsReduction twice{.sum = [](const Variable& s) { return mul_scalar(s, 2.0); },
                                    .count = [](int64_t n) { return 2 * n; }};
    Tensor running_mean = Tensor::zeros({3}, v[0].dtype());
    Tensor running_var = Tensor::ones({3}, v[0].dtype());
    return batch_norm(v[0], v[1], v[2], running_mean, running_var, true, 0.1, 1e-5, &twice);
  });
  add_case("batch_norm_eval_4d", {in({2, 2, 3, 3}, kS), in({2}), in({2})}, [](const Vars& v) {
    Tensor running_mean = Tensor::from_vector<double>({0.5, -0.25}, {2}).to(v[0].dtype());
    Tensor running_var = Tensor::from_vector<double>({2.0, 0.5}, {2}).to(v[0].dtype());
    return batch_norm(v[0], v[1], v[2], running_mean, running_var, false, 0.1, 1e-5);
  });
  // Scaled dot-product attention.
  add_case("attention", {in({3, 4}), in({5, 4}), in({5, 2})}, [](const Vars& v) {
    Variable scores = mul_scalar(matmul(v[0], transpose(v[1], 0, 1)), 0.5);
    return matmul(softmax(scores, -1), v[2]);
  });
  // A two-layer MLP with its loss; smooth activations so no kink lies within eps.
  Tensor labels = labels64({2, 0, 1});
  add_case("mlp_cross_entropy", {in({3, 4}), in({5, 4}), in({5}), in({3, 5}), in({3})},
           [labels](const Vars& v) {
             Variable h = gelu(linear(v[0], v[1], v[2]));
             return cross_entropy(linear(tanh(h), v[3], v[4]), labels);
           });
  // One input feeding two branches that meet again.
  add_case("shared_input_branches", {in({2, 3})},
           [](const Vars& v) { return tanh(v[0]) * sigmoid(v[0]) + exp(mul_scalar(v[0], 0.5)); });
  // Convolution, pooling and a linear layer; the pooled values are spread 0.05 apart or more by
  // construction only at the input, so pooling comes first (a kink within eps would break the
  // finite differences).
  add_case("pool_conv_linear",
           {in({2, 1, 6, 6}, Layout::kContiguous, Values::kDistinct), in({2, 1, 2, 2}), in({2}),
            in({3, 8}), in({3})},
           [](const Vars& v) {
             Variable p = max_pool2d(v[0], {.kernel = 3, .stride = 2, .padding = 1});
             Variable c = tanh(conv2d(p, v[1], v[2], {.stride = 1, .padding = 0}));
             return linear(reshape(c, {2, 8}), v[3], v[4]);
           });
}

[[maybe_unused]] const bool kRegistered = [] {
  register_binary_cases();
  register_unary_cases();
  register_matmul_cases();
  register_shape_cases();
  register_softmax_cases();
  register_conv_cases();
  register_embedding_and_dropout_cases();
  register_loss_cases();
  register_composite_cases();
  return true;
}();

TESSERA_GRADCHECK_DRIVER(Autograd);

// exp whose backward is off by `scale`: what a wrong gradient looks like to the driver.
Variable exp_with_wrong_gradient(const Variable& a, double scale) {
  Tensor y = ::tessera::exp(a.data());
  return make_result(y, "wrong_exp", {a}, [y, scale](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{::tessera::mul_scalar(::tessera::mul(g, y), scale)};
  });
}

TEST(Gradcheck, PassesACorrectGradientWithErrorsFarBelowTheBound) {
  auto r = testing::gradcheck([](const Vars& v) { return exp(v[0]); }, {in({3, 4})},
                              testing::float64_options());
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_LT(r.max_error, 1e-8) << r.report;
}

TEST(Gradcheck, DetectsABackwardScaledByOnePercentInFloat64) {
  auto r = testing::gradcheck([](const Vars& v) { return exp_with_wrong_gradient(v[0], 1.01); },
                              {in({3, 4})}, testing::float64_options());
  EXPECT_FALSE(r.passed);
  EXPECT_NEAR(r.max_error, 0.01 / 1.01, 1e-6) << r.report;
  EXPECT_NE(r.report.find("analytic"), std::string::npos) << r.report;
}

TEST(Gradcheck, DetectsABackwardOffByTwoPartsInAMillionInFloat64) {
  auto r =
      testing::gradcheck([](const Vars& v) { return exp_with_wrong_gradient(v[0], 1.0 + 2e-6); },
                         {in({3, 4})}, testing::float64_options());
  EXPECT_FALSE(r.passed) << r.report;
}

TEST(Gradcheck, DetectsABackwardScaledByTenPercentInFloat32) {
  auto r = testing::gradcheck([](const Vars& v) { return exp_with_wrong_gradient(v[0], 1.1); },
                              {in({3, 4})}, testing::float32_options());
  EXPECT_FALSE(r.passed) << r.report;
}

TEST(Gradcheck, DetectsAWrongGradientEvenWhenItIsTiny) {
  // y = 1e-5 * x^2 / 2 has gradient 1e-5 * x; a backward returning twice that is wrong by 1e-5
  // absolute, far below the floor, and must still fail.
  auto f = [](const Vars& v) {
    Tensor x = v[0].data();
    Tensor y = ::tessera::mul_scalar(::tessera::mul(x, x), 0.5e-5);
    return make_result(y, "tiny", {v[0]}, [x](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{::tessera::mul_scalar(::tessera::mul(g, x), 2e-5)};
    });
  };
  auto r = testing::gradcheck(f, {in({3, 4})}, testing::float64_options());
  EXPECT_FALSE(r.passed) << r.report;
}

TEST(Gradcheck, DetectsAGradientMissingItsBroadcastReduction) {
  // add whose rhs gradient takes only the first row instead of summing over rows.
  auto f = [](const Vars& v) {
    Tensor out = ::tessera::add(v[0].data(), v[1].data());
    return make_result(out, "bad_add", {v[0], v[1]}, [](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g, g.select(0, 0).contiguous()};
    });
  };
  auto r = testing::gradcheck(f, {in({3, 4}), in({4})}, testing::float64_options());
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_NE(r.report.find("input 1"), std::string::npos) << r.report;
}

TEST(Gradcheck, DetectsAKernelThatReadsAStridedInputAsContiguous) {
  // Reads the raw buffer as if dense: with Layout::kStrided that reads the NaN-filled gaps.
  auto f = [](const Vars& v) {
    Tensor x = v[0].data();
    Tensor dense = Tensor::empty(x.shape(), x.dtype());
    std::copy_n(x.data<double>(), x.numel(), dense.data<double>());
    return make_result(dense, "bad_copy", {v[0]},
                       [](const Tensor& g, const std::vector<bool>&) { return std::vector{g}; });
  };
  auto r = testing::gradcheck(f, {in({2, 3}, kS)}, testing::float64_options());
  EXPECT_FALSE(r.passed) << r.report;
}

TEST(Gradcheck, TakesPlainTensorsForTheCommonCase) {
  Tensor x = Tensor::from_vector<double>({0.5, -1.0, 2.0}, {3});
  Tensor y = Tensor::from_vector<double>({1.5, 0.25, -0.75}, {3});
  auto r = testing::gradcheck([](const Vars& v) { return v[0] * v[1]; }, {x, y});
  EXPECT_TRUE(r.passed) << r.report;
}

TEST(Gradcheck, RejectsALayoutThatWouldStayContiguous) {
  EXPECT_THROW((void)testing::gradcheck([](const Vars& v) { return v[0]; }, {in({4, 1, 1}, kT)}),
               std::invalid_argument);
}

TEST(Gradcheck, RegistryRefusesDuplicateAndBadNames) {
  auto f = [](const Vars& v) { return v[0]; };
  EXPECT_THROW(register_gradcheck({"add_same_shape", {in({2})}, f}), std::invalid_argument);
  EXPECT_THROW(register_gradcheck({"has space", {in({2})}, f}), std::invalid_argument);
}

TEST(Gradcheck, EveryOpInFunctionsHeaderHasARegisteredCase) {
  std::istringstream ops(
      "add sub mul div neg add_scalar mul_scalar pow_scalar exp log sqrt tanh sigmoid relu gelu "
      "matmul linear sum mean reshape transpose slice softmax log_softmax conv2d max_pool2d "
      "embedding dropout cross_entropy mse_loss bce_with_logits layer_norm batch_norm");
  auto names = testing::registered_gradcheck_names();
  for (std::string op; ops >> op;) {
    bool found = false;
    for (const auto& name : names) found = found || name.rfind(op, 0) == 0;
    EXPECT_TRUE(found) << "no gradient check registered for " << op;
  }
}

}  // namespace
}  // namespace tessera::autograd
