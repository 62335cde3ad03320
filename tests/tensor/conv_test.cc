#include "tessera/tensor/conv.h"

#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;

struct Geometry {
  int64_t n, c, h, w, o, kh, kw, stride, pad;
  int64_t oh() const { return (h + 2 * pad - kh) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - kw) / stride + 1; }
};

// Contiguous values of t as double.
std::vector<double> values(const Tensor& t) { return t.to(DType::kFloat64).to_vector<double>(); }

// The 7-loop definition of convolution (cross-correlation), in double.
Tensor conv_ref(const Geometry& g, const Tensor& input, const Tensor& weight, const Tensor& bias) {
  std::vector<double> xv = values(input), wv = values(weight);
  std::vector<double> bv = bias.defined() ? values(bias) : std::vector<double>(g.o, 0.0);
  std::vector<double> yv(static_cast<size_t>(g.n * g.o * g.oh() * g.ow()));
  // Raw pointers: this also runs in unoptimised sanitizer builds.
  const double *x = xv.data(), *wt = wv.data(), *b = bv.data();
  double* y = yv.data();
  for (int64_t s = 0; s < g.n; ++s)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t i = 0; i < g.oh(); ++i)
        for (int64_t j = 0; j < g.ow(); ++j) {
          double acc = b[o];
          for (int64_t c = 0; c < g.c; ++c)
            for (int64_t p = 0; p < g.kh; ++p)
              for (int64_t q = 0; q < g.kw; ++q) {
                int64_t yy = i * g.stride - g.pad + p, xx = j * g.stride - g.pad + q;
                if (yy < 0 || yy >= g.h || xx < 0 || xx >= g.w) continue;
                acc += x[((s * g.c + c) * g.h + yy) * g.w + xx] *
                       wt[((o * g.c + c) * g.kh + p) * g.kw + q];
              }
          y[((s * g.o + o) * g.oh() + i) * g.ow() + j] = acc;
        }
  return Tensor::from_vector(yv, {g.n, g.o, g.oh(), g.ow()});
}

// The gradients of sum(grad_output * conv(input, weight) + bias) by the same loops.
Conv2dGrads conv_backward_ref(const Geometry& g, const Tensor& grad_output, const Tensor& input,
                              const Tensor& weight) {
  std::vector<double> gyv = values(grad_output), xv = values(input), wv = values(weight);
  std::vector<double> gxv(xv.size(), 0.0), gwv(wv.size(), 0.0), gbv(static_cast<size_t>(g.o), 0.0);
  const double *gy = gyv.data(), *x = xv.data(), *wt = wv.data();
  double *gx = gxv.data(), *gw = gwv.data(), *gb = gbv.data();
  for (int64_t s = 0; s < g.n; ++s)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t i = 0; i < g.oh(); ++i)
        for (int64_t j = 0; j < g.ow(); ++j) {
          double go = gy[((s * g.o + o) * g.oh() + i) * g.ow() + j];
          gb[o] += go;
          for (int64_t c = 0; c < g.c; ++c)
            for (int64_t p = 0; p < g.kh; ++p)
              for (int64_t q = 0; q < g.kw; ++q) {
                int64_t yy = i * g.stride - g.pad + p, xx = j * g.stride - g.pad + q;
                if (yy < 0 || yy >= g.h || xx < 0 || xx >= g.w) continue;
                int64_t xi = ((s * g.c + c) * g.h + yy) * g.w + xx;
                int64_t wi = ((o * g.c + c) * g.kh + p) * g.kw + q;
                gx[xi] += go * wt[wi];
                gw[wi] += go * x[xi];
              }
        }
  return {Tensor::from_vector(gxv, input.shape()), Tensor::from_vector(gwv, weight.shape()),
          Tensor::from_vector(gbv, {g.o})};
}

// Runs forward and backward of one geometry in dtype and compares with the references.
void check_conv(const Geometry& g, DType dtype, bool with_bias, uint64_t seed) {
  Generator gen(seed);
  Tensor input = Tensor::randn({g.n, g.c, g.h, g.w}, gen, dtype);
  Tensor weight = Tensor::randn({g.o, g.c, g.kh, g.kw}, gen, dtype);
  Tensor bias = with_bias ? Tensor::randn({g.o}, gen, dtype) : Tensor();
  Conv2dOptions opt{.stride = g.stride, .padding = g.pad};
  // float32 sums of c*kh*kw products of unit normals: error ~1e-6 * sqrt(terms) relative to 1.
  const double tol = dtype == DType::kFloat32 ? 2e-4 : 1e-11;
  Tensor out = conv2d(input, weight, bias, opt);
  ASSERT_EQ(out.dtype(), dtype);
  EXPECT_TRUE(tensors_close(out, conv_ref(g, input, weight, bias), tol, tol)) << "forward";

  Tensor grad_output = Tensor::randn(out.shape(), gen, dtype);
  Conv2dGrads got = conv2d_backward(grad_output, input, weight, opt, true, true);
  Conv2dGrads want = conv_backward_ref(g, grad_output, input, weight);
  EXPECT_TRUE(tensors_close(got.input, want.input, tol, tol)) << "grad input";
  EXPECT_TRUE(tensors_close(got.weight, want.weight, tol, tol * g.n)) << "grad weight";
  EXPECT_TRUE(tensors_close(got.bias, want.bias, tol, tol * g.n)) << "grad bias";
  Conv2dGrads weight_only = conv2d_backward(grad_output, input, weight, opt, false, false);
  EXPECT_FALSE(weight_only.input.defined());
  EXPECT_FALSE(weight_only.bias.defined());
  EXPECT_TRUE(tensors_close(weight_only.weight, want.weight, tol, tol * g.n));
}

TEST(Conv2d, MatchesTheNaiveReferenceForStridesAndPaddings) {
  const std::vector<Geometry> geometries = {
      {2, 3, 5, 5, 4, 3, 3, 1, 0},  // plain
      {2, 3, 5, 5, 4, 3, 3, 1, 1},  // same padding
      {2, 3, 7, 6, 2, 3, 3, 2, 1},  // stride 2, padding 1, odd and even sides
      {1, 2, 6, 7, 3, 2, 3, 2, 0},  // rectangular kernel
      {3, 1, 4, 4, 2, 4, 4, 1, 2},  // kernel as large as the input, wide padding
      {1, 4, 5, 5, 1, 1, 1, 3, 0},  // 1x1 kernel, stride larger than it
  };
  uint64_t seed = 1;
  for (const Geometry& g : geometries) {
    for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
      for (bool bias : {true, false}) {
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(dtype) << " n" << g.n << " c" << g.c << " " << g.h << "x" << g.w
                     << " o" << g.o << " k" << g.kh << "x" << g.kw << " s" << g.stride << " p"
                     << g.pad << (bias ? " bias" : ""));
        check_conv(g, dtype, bias, seed++);
      }
    }
  }
}

TEST(Conv2d, SplitsALargeBatchIntoSeveralGemmGroupsWithoutChangingTheResult) {
  // 16 channels, 5x5 kernel, 28x28 with padding 2: 400 x 784 columns per sample, so the im2col
  // path (float64; float32 runs on oneDNN, whole batch at once) takes 13 samples per GEMM and 27
  // samples need three groups, the last holding one. The weight and bias gradients must add up
  // across groups.
  const Geometry g{27, 16, 28, 28, 2, 5, 5, 1, 2};
  check_conv(g, DType::kFloat64, true, 99);
}

TEST(Conv2d, ReadsNonContiguousInputs) {
  Generator gen(7);
  const Geometry g{2, 3, 5, 6, 2, 3, 3, 1, 1};
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    Tensor input = Tensor::randn({2, 3, 6, 5}, gen, dtype).transpose(2, 3);
    Tensor weight = Tensor::randn({2, 3, 3, 6}, gen, dtype).slice(3, 0, 6, 2);
    Tensor bias = Tensor::randn({4}, gen, dtype).slice(0, 0, 4, 2);
    const double tol = dtype == DType::kFloat32 ? 1e-4 : 1e-12;
    EXPECT_TRUE(tensors_close(conv2d(input, weight, bias, {.stride = 1, .padding = 1}),
                              conv_ref(g, input, weight, bias), tol, tol));
  }
}

TEST(Conv2d, RejectsBadShapesNamingTheOpAndBothShapes) {
  Tensor input = Tensor::zeros({1, 3, 5, 5});
  try {
    (void)conv2d(input, Tensor::zeros({4, 2, 3, 3}), Tensor());
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("conv2d"), std::string::npos) << what;
    EXPECT_NE(what.find("[1,3,5,5]"), std::string::npos) << what;
    EXPECT_NE(what.find("[4,2,3,3]"), std::string::npos) << what;
  }
  EXPECT_THROW(conv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({4, 3, 3, 3}), Tensor()), ShapeError);
  EXPECT_THROW(conv2d(input, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3})), ShapeError);
  EXPECT_THROW(conv2d(input, Tensor::zeros({4, 3, 7, 7}), Tensor()), ShapeError);
  EXPECT_THROW(conv2d(input, Tensor::zeros({4, 3, 3, 3}, DType::kFloat64), Tensor()), DTypeError);
  EXPECT_THROW(conv2d(input, Tensor::zeros({4, 3, 3, 3}), Tensor(), {.stride = 0}), ValueError);
  EXPECT_THROW(conv2d(input, Tensor::zeros({4, 3, 3, 3}), Tensor(), {.padding = -1}), ValueError);
  EXPECT_THROW(conv2d_backward(Tensor::zeros({1, 4, 2, 2}), input, Tensor::zeros({4, 3, 3, 3}), {},
                               true, true),
               ShapeError);
}

// Max pooling by definition: every window's largest value (padding never wins) and its first
// position in scan order.
MaxPoolResult pool_ref(const Tensor& input, int64_t k, int64_t s, int64_t p) {
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  std::vector<double> out;
  std::vector<int64_t> idx;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t at = -1;
          for (int64_t di = 0; di < k; ++di)
            for (int64_t dj = 0; dj < k; ++dj) {
              int64_t y = i * s - p + di, x = j * s - p + dj;
              if (y < 0 || y >= h || x < 0 || x >= w) continue;
              if (input.at({a, b, y, x}) > best) {
                best = input.at({a, b, y, x});
                at = y * w + x;
              }
            }
          out.push_back(best);
          idx.push_back(at);
        }
  return {Tensor::from_vector(out, {n, c, oh, ow}), Tensor::from_vector(idx, {n, c, oh, ow})};
}

TEST(MaxPool2d, MatchesTheReferenceForKernel2AndKernel3Stride2Padding1) {
  Generator gen(3);
  struct Case {
    Shape shape;
    Pool2dOptions opt;
  };
  const std::vector<Case> cases = {{{2, 3, 4, 4}, {.kernel = 2}},
                                   {{1, 2, 5, 7}, {.kernel = 2}},
                                   {{2, 2, 5, 5}, {.kernel = 3, .stride = 2, .padding = 1}},
                                   {{1, 1, 6, 4}, {.kernel = 3, .stride = 2, .padding = 1}},
                                   {{1, 2, 5, 5}, {.kernel = 3, .stride = 1, .padding = 0}}};
  for (const Case& c : cases) {
    for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
      Tensor input = Tensor::randn(c.shape, gen, dtype);
      MaxPoolResult got = max_pool2d(input, c.opt);
      int64_t stride = c.opt.stride == 0 ? c.opt.kernel : c.opt.stride;
      MaxPoolResult want = pool_ref(input, c.opt.kernel, stride, c.opt.padding);
      EXPECT_TRUE(tensors_close(got.output, want.output, 0, 0)) << shape_str(c.shape);
      EXPECT_TRUE(testing::tensors_equal(got.indices, want.indices)) << shape_str(c.shape);
    }
  }
}

TEST(MaxPool2d, PicksTheFirstOfTiedMaximaAndHandlesAllNegativeWindows) {
  Tensor input = Tensor::from_vector<float>({-5, -5, -7, -7,  //
                                             -5, -6, -7, -1,  //
                                             3, 3, 0, 0,      //
                                             3, 3, 0, 0},
                                            {1, 1, 4, 4});
  MaxPoolResult r = max_pool2d(input, {.kernel = 2});
  EXPECT_EQ(r.output.to_vector<float>(), (std::vector<float>{-5, -1, 3, 0}));
  EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 7, 8, 10}));
}

TEST(MaxPool2d, BackwardRoutesEachGradientToItsMaximumAndAddsOverlaps) {
  // Kernel 3, stride 1 over a 1x4 strip: the maximum at position 1 wins both windows.
  Tensor input = Tensor::from_vector<double>({0, 9, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 3, 4});
  MaxPoolResult r = max_pool2d(input, {.kernel = 3, .stride = 1});
  ASSERT_EQ(r.output.shape(), (Shape{1, 1, 1, 2}));
  Tensor g = Tensor::from_vector<double>({10, 100}, {1, 1, 1, 2});
  Tensor gx = max_pool2d_backward(g, r.indices, input.shape());
  std::vector<double> expected(12, 0.0);
  expected[1] = 110;
  EXPECT_EQ(gx.to_vector<double>(), expected);
}

TEST(MaxPool2d, RejectsBadArguments) {
  EXPECT_THROW(max_pool2d(Tensor::zeros({2, 4, 4})), ShapeError);
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 4, 4}), {.kernel = 0}), ValueError);
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 4, 4}), {.kernel = 2, .padding = 2}), ValueError);
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 2, 2}), {.kernel = 3}), ShapeError);
  EXPECT_THROW(max_pool2d_backward(Tensor::zeros({1, 1, 2, 2}),
                                   Tensor::zeros({1, 1, 2, 1}, DType::kInt64), {1, 1, 4, 4}),
               ShapeError);
}

}  // namespace
}  // namespace tessera
