#include "tessera/tensor/elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "strided_loop.h"

namespace tessera {
namespace {

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (!a.defined() || !b.defined()) throw ValueError(detail::concat(op, ": undefined tensor"));
  if (a.dtype() != b.dtype()) {
    throw DTypeError(detail::concat(op, ": dtypes differ: ", dtype_name(a.dtype()), " ",
                                    shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ",
                                    shape_str(b.shape())));
  }
}

template <typename F>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same_dtype(a, b, op);
  Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(shape, a.dtype());
  Tensor ea = a.shape() == shape ? a : a.expand(shape);
  Tensor eb = b.shape() == shape ? b : b.expand(shape);
  TESSERA_DISPATCH_FLOATING(a.dtype(), op, [&] {
    scalar_t* o = out.data<scalar_t>();
    const scalar_t* pa = ea.data<scalar_t>();
    const scalar_t* pb = eb.data<scalar_t>();
    kernels::strided_loop<3>(
        shape, {out.strides(), ea.strides(), eb.strides()},
        [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& inc) {
          scalar_t* po = o + off[0];
          const scalar_t* x = pa + off[1];
          const scalar_t* y = pb + off[2];
          if (inc[1] == 1 && inc[2] == 1) {
            for (int64_t i = 0; i < n; ++i) po[i] = f(x[i], y[i]);
          } else if (inc[1] == 1 && inc[2] == 0) {
            const scalar_t yv = *y;
            for (int64_t i = 0; i < n; ++i) po[i] = f(x[i], yv);
          } else {
            for (int64_t i = 0; i < n; ++i) po[i] = f(x[i * inc[1]], y[i * inc[2]]);
          }
        });
  });
  return out;
}

template <typename F>
Tensor unary(const Tensor& a, const char* op, F f) {
  if (!a.defined()) throw ValueError(detail::concat(op, ": undefined tensor"));
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  TESSERA_DISPATCH_FLOATING(a.dtype(), op, [&] {
    scalar_t* o = out.data<scalar_t>();
    const scalar_t* pa = a.data<scalar_t>();
    kernels::strided_loop<2>(
        a.shape(), {out.strides(), a.strides()},
        [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
          scalar_t* po = o + off[0];
          const scalar_t* x = pa + off[1];
          if (inc[1] == 1) {
            for (int64_t i = 0; i < n; ++i) po[i] = f(x[i]);
          } else {
            for (int64_t i = 0; i < n; ++i) po[i] = f(x[i * inc[1]]);
          }
        });
  });
  return out;
}

// float32's exp and erf without a library call, so that the loops over them vectorise: GELU's
// erf was most of a transformer's time outside GEMM. exp: 2^k e^r with |r| <= ln 2 / 2 and e^r by
// Cephes' polynomial (relative error about 1e-7). erf: Abramowitz and Stegun 7.1.26 (absolute
// error below 1.5e-7), as PyTorch's vectorised CPU erf computes it. float64 keeps the library's.
[[gnu::always_inline]] inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // x / ln 2 rounded to the nearest integer: adding 1.5 * 2^23 leaves no fraction bits (std::floor
  // would not vectorise without -fno-trapping-math).
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
}

[[gnu::always_inline]] inline float erf_approx(float x) {
  const float a = std::abs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * exp_approx(-a * a);
  return std::copysign(y, x);
}

[[gnu::always_inline]] inline float exp_of(float x) { return exp_approx(x); }
double exp_of(double x) { return std::exp(x); }
[[gnu::always_inline]] inline float erf_of(float x) { return erf_approx(x); }
double erf_of(double x) { return std::erf(x); }

template <typename T>
[[gnu::always_inline]] inline T erf_cdf(T x) {
  return T(0.5) * (T(1) + erf_of(x * T(std::numbers::sqrt2 / 2)));
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(a, b, "add", [](auto x, auto y) { return x + y; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(a, b, "sub", [](auto x, auto y) { return x - y; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, "mul", [](auto x, auto y) { return x * y; });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(a, b, "div", [](auto x, auto y) { return x / y; });
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(a, b, "maximum", [](auto x, auto y) { return x > y ? x : y; });
}
Tensor greater(const Tensor& a, const Tensor& b) {
  return binary(a, b, "greater",
                [](auto x, auto y) { return x > y ? decltype(x)(1) : decltype(x)(0); });
}

Tensor add_scalar(const Tensor& a, double s) {
  return unary(a, "add_scalar", [s](auto x) { return x + static_cast<decltype(x)>(s); });
}
Tensor mul_scalar(const Tensor& a, double s) {
  return unary(a, "mul_scalar", [s](auto x) { return x * static_cast<decltype(x)>(s); });
}
Tensor pow_scalar(const Tensor& a, double p) {
  if (p == 2.0) return unary(a, "pow", [](auto x) { return x * x; });
  return unary(a, "pow", [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); });
}

Tensor neg(const Tensor& a) {
  return unary(a, "neg", [](auto x) { return -x; });
}
Tensor exp(const Tensor& a) {
  return unary(a, "exp", [](auto x) { return std::exp(x); });
}
Tensor log(const Tensor& a) {
  return unary(a, "log", [](auto x) { return std::log(x); });
}
Tensor sqrt(const Tensor& a) {
  return unary(a, "sqrt", [](auto x) { return std::sqrt(x); });
}
Tensor abs(const Tensor& a) {
  return unary(a, "abs", [](auto x) { return std::abs(x); });
}
Tensor tanh(const Tensor& a) {
  return unary(a, "tanh", [](auto x) { return std::tanh(x); });
}
Tensor sigmoid(const Tensor& a) {
  return unary(a, "sigmoid", [](auto x) {
    using T = decltype(x);
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  });
}
Tensor relu(const Tensor& a) {
  return unary(a, "relu", [](auto x) { return x > 0 ? x : decltype(x)(0); });
}
Tensor gelu(const Tensor& a) {
  return unary(a, "gelu", [](auto x) { return x * erf_cdf(x); });
}
Tensor softplus(const Tensor& a) {
  return unary(a, "softplus", [](auto x) {
    using T = decltype(x);
    return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
  });
}

Tensor relu_backward(const Tensor& grad, const Tensor& output) {
  return binary(grad, output, "relu_backward",
                [](auto g, auto y) { return y > 0 ? g : decltype(g)(0); });
}
Tensor tanh_backward(const Tensor& grad, const Tensor& output) {
  return binary(grad, output, "tanh_backward",
                [](auto g, auto y) { return g * (decltype(g)(1) - y * y); });
}
Tensor sigmoid_backward(const Tensor& grad, const Tensor& output) {
  return binary(grad, output, "sigmoid_backward",
                [](auto g, auto y) { return g * y * (decltype(g)(1) - y); });
}
Tensor gelu_backward(const Tensor& grad, const Tensor& input) {
  return binary(grad, input, "gelu_backward", [](auto g, auto x) {
    using T = decltype(x);
    const T pdf = exp_of(T(-0.5) * x * x) * T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
    return g * (erf_cdf(x) + x * pdf);
  });
}

void axpy_(Tensor& y, double alpha, const Tensor& x) {
  check_same_dtype(y, x, "axpy_");
  if (y.shape() != x.shape() || !y.is_contiguous()) {
    throw ShapeError(detail::concat("axpy_: y ", shape_str(y.shape()), " and x ",
                                    shape_str(x.shape()), " must match and y be contiguous"));
  }
  Tensor xc = x.contiguous();
  TESSERA_DISPATCH_FLOATING(y.dtype(), "axpy_", [&] {
    scalar_t* py = y.data<scalar_t>();
    const scalar_t* px = xc.data<scalar_t>();
    const auto a = static_cast<scalar_t>(alpha);
    for (int64_t i = 0; i < y.numel(); ++i) py[i] += a * px[i];
  });
}

void scale_(Tensor& y, double alpha) {
  if (!y.is_contiguous()) throw ShapeError("scale_: tensor must be contiguous");
  TESSERA_DISPATCH_FLOATING(y.dtype(), "scale_", [&] {
    scalar_t* py = y.data<scalar_t>();
    const auto a = static_cast<scalar_t>(alpha);
    for (int64_t i = 0; i < y.numel(); ++i) py[i] *= a;
  });
}

}  // namespace tessera
