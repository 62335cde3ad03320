#include "tessera/tensor/elementwise.h"

#include <cmath>
#include <functional>
#include <numbers>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;

// Applies f to every element of a (any layout), in double, as the reference.
Tensor map_ref(const Tensor& a, const std::function<double(double)>& f) {
  std::vector<double> v = a.to(DType::kFloat64).to_vector<double>();
  for (double& x : v) x = f(x);
  return Tensor::from_vector(v, a.shape());
}

// The numpy broadcast of a and b combined by f, by explicit index arithmetic.
Tensor broadcast_ref(const Tensor& a, const Tensor& b,
                     const std::function<double(double, double)>& f) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "ref");
  std::vector<double> values(static_cast<size_t>(shape_numel(out)));
  std::vector<int64_t> index(out.size());
  auto operand_index = [&](const Tensor& t) {
    std::vector<int64_t> i(static_cast<size_t>(t.dim()));
    size_t lead = out.size() - i.size();
    for (size_t d = 0; d < i.size(); ++d)
      i[d] = t.size(static_cast<int64_t>(d)) == 1 ? 0 : index[lead + d];
    return i;
  };
  for (size_t k = 0; k < values.size(); ++k) {
    int64_t rest = static_cast<int64_t>(k);
    for (size_t d = out.size(); d-- > 0;) {
      index[d] = rest % out[d];
      rest /= out[d];
    }
    values[k] = f(a.at(operand_index(a)), b.at(operand_index(b)));
  }
  return Tensor::from_vector(values, out);
}

struct BinaryOp {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  std::function<double(double, double)> ref;
};

const std::vector<BinaryOp>& binary_ops() {
  static const std::vector<BinaryOp> ops = {
      {"add", add, [](double x, double y) { return x + y; }},
      {"sub", sub, [](double x, double y) { return x - y; }},
      {"mul", mul, [](double x, double y) { return x * y; }},
      {"div", div, [](double x, double y) { return x / y; }},
      {"maximum", maximum, [](double x, double y) { return x > y ? x : y; }},
      {"greater", greater, [](double x, double y) { return x > y ? 1.0 : 0.0; }},
  };
  return ops;
}

TEST(Elementwise, BinaryOpsBroadcastLikeNumpy) {
  Generator gen(1);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}},       {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}},
      {{4}, {2, 3, 4}}, {{2, 1, 4}, {3, 1}}, {{}, {2, 3}},     {{2, 3}, {}}};
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    for (const auto& [sa, sb] : shapes) {
      Tensor a = Tensor::randn(sa, gen, dtype);
      Tensor b = Tensor::rand(sb, gen, 0.5, 2.0, dtype);
      for (const auto& op : binary_ops()) {
        Tensor out = op.op(a, b);
        EXPECT_EQ(out.dtype(), dtype);
        EXPECT_TRUE(tensors_close(out, broadcast_ref(a, b, op.ref), 1e-6, 1e-7))
            << op.name << " " << shape_str(sa) << " " << shape_str(sb);
      }
    }
  }
}

TEST(Elementwise, BinaryOpsReadNonContiguousOperands) {
  Generator gen(2);
  Tensor base = Tensor::randn({4, 6}, gen, DType::kFloat64);
  Tensor a = base.t();                                                        // [6, 4], transposed
  Tensor b = base.slice(1, 0, 6, 2).t();                                      // [3, 4], strided...
  Tensor b6 = Tensor::randn({6, 8}, gen, DType::kFloat64).slice(1, 0, 8, 2);  // [6, 4], step 2
  Tensor row = Tensor::randn({2, 4}, gen, DType::kFloat64).select(0, 1);      // [4], offset
  for (const auto& op : binary_ops()) {
    EXPECT_TRUE(tensors_close(op.op(a, b6), broadcast_ref(a, b6, op.ref))) << op.name;
    EXPECT_TRUE(tensors_close(op.op(a, row), broadcast_ref(a, row, op.ref))) << op.name;
    EXPECT_TRUE(
        tensors_close(op.op(b, a.slice(0, 0, 3)), broadcast_ref(b, a.slice(0, 0, 3), op.ref)))
        << op.name;
  }
}

TEST(Elementwise, LargeBroadcastsSplitAcrossThreadsGiveTheSameResult) {
  Generator gen(3);
  Tensor a = Tensor::randn({300, 257}, gen);
  Tensor b = Tensor::randn({257}, gen);
  Tensor out = add(a, b);
  for (int64_t r : {0, 150, 299}) {
    for (int64_t c : {0, 100, 256}) {
      ASSERT_FLOAT_EQ(static_cast<float>(out.at({r, c})),
                      static_cast<float>(a.at({r, c})) + static_cast<float>(b.at({c})));
    }
  }
}

TEST(Elementwise, UnaryOpsMatchTheStandardLibrary) {
  Generator gen(4);
  Tensor x = Tensor::randn({5, 3}, gen, DType::kFloat64).t();  // non-contiguous on purpose
  Tensor pos = Tensor::rand({7}, gen, 0.1, 3.0, DType::kFloat64);
  auto phi = [](double v) { return 0.5 * (1 + std::erf(v / std::numbers::sqrt2)); };
  EXPECT_TRUE(tensors_close(neg(x), map_ref(x, [](double v) { return -v; })));
  EXPECT_TRUE(tensors_close(exp(x), map_ref(x, [](double v) { return std::exp(v); })));
  EXPECT_TRUE(tensors_close(log(pos), map_ref(pos, [](double v) { return std::log(v); })));
  EXPECT_TRUE(tensors_close(sqrt(pos), map_ref(pos, [](double v) { return std::sqrt(v); })));
  EXPECT_TRUE(tensors_close(abs(x), map_ref(x, [](double v) { return std::abs(v); })));
  EXPECT_TRUE(tensors_close(tanh(x), map_ref(x, [](double v) { return std::tanh(v); })));
  EXPECT_TRUE(tensors_close(sigmoid(x), map_ref(x, [](double v) { return 1 / (1 + std::exp(-v)); }),
                            1e-12, 1e-15));
  EXPECT_TRUE(tensors_close(relu(x), map_ref(x, [](double v) { return v > 0 ? v : 0.0; })));
  EXPECT_TRUE(tensors_close(gelu(x), map_ref(x, [&](double v) { return v * phi(v); })));
  EXPECT_TRUE(tensors_close(
      softplus(x), map_ref(x, [](double v) { return std::log1p(std::exp(v)); }), 1e-12, 1e-15));
  EXPECT_TRUE(tensors_close(add_scalar(x, 1.5), map_ref(x, [](double v) { return v + 1.5; })));
  EXPECT_TRUE(tensors_close(mul_scalar(x, -3), map_ref(x, [](double v) { return -3 * v; })));
  EXPECT_TRUE(tensors_close(pow_scalar(x, 2), map_ref(x, [](double v) { return v * v; })));
  EXPECT_TRUE(
      tensors_close(pow_scalar(pos, 1.5), map_ref(pos, [](double v) { return std::pow(v, 1.5); })));
}

TEST(Elementwise, SigmoidAndSoftplusStayFiniteForLargeInputs) {
  Tensor x = Tensor::from_vector<float>({-1000, -100, 100, 1000}, {4});
  std::vector<float> s = sigmoid(x).to_vector<float>();
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_EQ(s[3], 1.0f);
  std::vector<float> sp = softplus(x).to_vector<float>();
  for (float v : sp) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(sp[3], 1000.0f);
  EXPECT_NEAR(sp[0], 0.0f, 1e-30f);
}

TEST(Elementwise, BackwardHelpersUseTheForwardValues) {
  Tensor g = Tensor::from_vector<double>({1, 2, 3, 4}, {4});
  Tensor y = Tensor::from_vector<double>({-0.5, 0.0, 0.25, 0.5}, {4});
  EXPECT_TRUE(tensors_close(relu_backward(g, y), Tensor::from_vector<double>({0, 0, 3, 4}, {4})));
  EXPECT_TRUE(tensors_close(tanh_backward(g, y),
                            Tensor::from_vector<double>({0.75, 2, 3 * 0.9375, 3}, {4})));
  EXPECT_TRUE(tensors_close(sigmoid_backward(g, y),
                            Tensor::from_vector<double>({-0.75, 0, 3 * 0.1875, 1}, {4})));
  Tensor x = Tensor::from_vector<double>({0.0}, {1});
  EXPECT_TRUE(tensors_close(gelu_backward(Tensor::ones({1}, DType::kFloat64), x),
                            Tensor::from_vector<double>({0.5}, {1})));
}

TEST(Elementwise, InPlaceAxpyAndScale) {
  Tensor y = Tensor::from_vector<float>({1, 2, 3}, {3});
  axpy_(y, 2.0, Tensor::from_vector<float>({1, 1, 1}, {3}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{3, 4, 5}));
  axpy_(y, -1.0,
        Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2}).slice(1, 0, 1).reshape({3}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{2, 1, 0}));
  scale_(y, 0.5);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1, 0.5f, 0}));
  Tensor wrong = Tensor::zeros({2});
  EXPECT_THROW(axpy_(y, 1.0, wrong), ShapeError);
  Tensor t = Tensor::zeros({2, 3}).t();
  EXPECT_THROW(scale_(t, 2.0), ShapeError);
}

TEST(Elementwise, IntegerTensorsAreRefusedWithDTypeError) {
  Tensor i = Tensor::zeros({2}, DType::kInt64);
  EXPECT_THROW(exp(i), DTypeError);
  EXPECT_THROW(add(i, i), DTypeError);
  EXPECT_THROW(add(Tensor(), Tensor()), ValueError);
}

}  // namespace
}  // namespace tessera
