#include "tessera/tensor/softmax.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;

// Softmax of a 3-D tensor along `axis`, by explicit loops in double.
Tensor softmax_ref(const Tensor& a, int64_t axis, bool log) {
  Shape shape = a.shape();
  std::vector<double> out(static_cast<size_t>(a.numel()));
  std::vector<int64_t> idx(3);
  for (idx[0] = 0; idx[0] < shape[0]; ++idx[0]) {
    for (idx[1] = 0; idx[1] < shape[1]; ++idx[1]) {
      for (idx[2] = 0; idx[2] < shape[2]; ++idx[2]) {
        std::vector<int64_t> j = idx;
        double mx = -INFINITY;
        for (j[axis] = 0; j[axis] < shape[axis]; ++j[axis]) mx = std::max(mx, a.at(j));
        double total = 0;
        for (j[axis] = 0; j[axis] < shape[axis]; ++j[axis]) total += std::exp(a.at(j) - mx);
        double x = a.at(idx) - mx;
        out[static_cast<size_t>((idx[0] * shape[1] + idx[1]) * shape[2] + idx[2])] =
            log ? x - std::log(total) : std::exp(x) / total;
      }
    }
  }
  return Tensor::from_vector(out, shape);
}

TEST(Softmax, MatchesTheReferenceAlongEveryAxis) {
  Generator gen(1);
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    const double tol = dtype == DType::kFloat32 ? 1e-6 : 1e-14;
    Tensor contiguous = Tensor::randn({2, 3, 4}, gen, dtype);
    Tensor transposed = Tensor::randn({4, 3, 2}, gen, dtype).transpose(0, 2);
    for (const Tensor& a : {contiguous, transposed}) {
      for (int64_t axis : {0, 1, 2}) {
        EXPECT_TRUE(tensors_close(softmax(a, axis), softmax_ref(a, axis, false), tol, tol))
            << "axis " << axis;
        EXPECT_TRUE(tensors_close(log_softmax(a, axis - 3), softmax_ref(a, axis, true), tol, tol))
            << "axis " << axis;
      }
    }
  }
}

TEST(Softmax, IsStableForLargeLogits) {
  Tensor a = Tensor::from_vector<float>({1000, 1001, 1002, -1000, -1001, -1002}, {2, 3});
  std::vector<float> p = softmax(a, 1).to_vector<float>();
  std::vector<float> lp = log_softmax(a, 1).to_vector<float>();
  for (float v : p) EXPECT_TRUE(std::isfinite(v));
  for (float v : lp) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(p[2], 0.66524096f, 1e-6f);
  // Relative to the result, not to the logits: log-softmax of logits near 1000 keeps float32's
  // full precision.
  EXPECT_NEAR(lp[2], -0.40760596f, 1e-6f);
  EXPECT_NEAR(lp[5], -2.40760596f, 1e-6f);
}

TEST(Softmax, BackwardFormulasMatchTheirDefinitions) {
  Generator gen(2);
  Tensor x = Tensor::randn({3, 4}, gen, DType::kFloat64);
  Tensor g = Tensor::randn({3, 4}, gen, DType::kFloat64);
  Tensor y = softmax(x, 0);
  Tensor ly = log_softmax(x, 0);
  Tensor gs = softmax_backward(g, y, 0);
  Tensor gl = log_softmax_backward(g, ly, 0);
  for (int64_t c = 0; c < 4; ++c) {
    double dot = 0, total = 0;
    for (int64_t r = 0; r < 3; ++r) {
      dot += g.at({r, c}) * y.at({r, c});
      total += g.at({r, c});
    }
    for (int64_t r = 0; r < 3; ++r) {
      EXPECT_NEAR(gs.at({r, c}), y.at({r, c}) * (g.at({r, c}) - dot), 1e-14);
      EXPECT_NEAR(gl.at({r, c}), g.at({r, c}) - std::exp(ly.at({r, c})) * total, 1e-14);
    }
  }
  EXPECT_THROW(softmax_backward(g, Tensor::zeros({4, 3}, DType::kFloat64), 0), ShapeError);
}

TEST(CrossEntropy, MatchesAHandComputation) {
  Tensor logits = Tensor::from_vector<double>({1, 2, 3, 1, 1, 1}, {2, 3});
  Tensor labels = Tensor::from_vector<int64_t>({2, 0}, {2});
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double lse1 = 1.0 + std::log(3.0);
  CrossEntropyResult r = softmax_cross_entropy(logits, labels);
  EXPECT_EQ(r.loss.dim(), 0);
  EXPECT_NEAR(r.loss.item(), ((lse0 - 3) + (lse1 - 1)) / 2, 1e-14);
  EXPECT_TRUE(tensors_close(r.probs, softmax(logits, 1), 1e-14, 1e-15));
  // Label smoothing e: target (1 - e) one_hot + e / C.
  const double e = 0.2;
  double expected = 0;
  for (int64_t row = 0; row < 2; ++row) {
    double lse = row == 0 ? lse0 : lse1;
    int64_t y = row == 0 ? 2 : 0;
    for (int64_t c = 0; c < 3; ++c) {
      double target = (c == y ? 1 - e : 0) + e / 3;
      expected += -target * (logits.at({row, c}) - lse) / 2;
    }
  }
  EXPECT_NEAR(softmax_cross_entropy(logits, labels, e).loss.item(), expected, 1e-14);
  // int32 labels and float32 logits.
  CrossEntropyResult f =
      softmax_cross_entropy(logits.to(DType::kFloat32), Tensor::from_vector<int32_t>({2, 0}, {2}));
  EXPECT_EQ(f.loss.dtype(), DType::kFloat32);
  EXPECT_NEAR(f.loss.item(), r.loss.item(), 1e-6);
}

TEST(CrossEntropy, KeepsFullPrecisionForLargeLogits) {
  Tensor logits = Tensor::from_vector<float>({1000, 1001, 1002, -5000, -5001, -5002}, {2, 3});
  const double log_sum = std::log(1 + std::exp(-1.0) + std::exp(-2.0));
  CrossEntropyResult r = softmax_cross_entropy(logits, Tensor::from_vector<int64_t>({2, 2}, {2}));
  EXPECT_NEAR(r.loss.item(), (log_sum + (log_sum + 2)) / 2, 1e-6);
  CrossEntropyResult one =
      softmax_cross_entropy(logits.slice(0, 0, 1), Tensor::from_vector<int64_t>({2}, {1}), 0.3);
  // 0.7 * nll + 0.3 * mean over classes of -log p = 0.7 * log_sum + 0.3 * (log_sum + 1).
  EXPECT_NEAR(one.loss.item(), log_sum + 0.3, 1e-6);
}

TEST(CrossEntropy, BackwardIsProbabilitiesMinusTargetOverN) {
  Tensor logits = Tensor::from_vector<double>({0.5, -1, 2, 0, 0, 0}, {2, 3});
  Tensor labels = Tensor::from_vector<int64_t>({1, 2}, {2});
  CrossEntropyResult r = softmax_cross_entropy(logits, labels, 0.1);
  Tensor g =
      softmax_cross_entropy_backward(Tensor::scalar(3.0, DType::kFloat64), r.probs, labels, 0.1);
  for (int64_t row = 0; row < 2; ++row) {
    for (int64_t c = 0; c < 3; ++c) {
      double target = (c == labels.at({row}) ? 0.9 : 0) + 0.1 / 3;
      EXPECT_NEAR(g.at({row, c}), (r.probs.at({row, c}) - target) * 3.0 / 2, 1e-14);
    }
  }
}

TEST(CrossEntropy, OutOfRangeLabelThrowsIndexErrorNamingRowAndLabel) {
  Tensor logits = Tensor::zeros({3, 4});
  try {
    (void)softmax_cross_entropy(logits, Tensor::from_vector<int64_t>({0, 4, 1}, {3}));
    FAIL() << "no exception";
  } catch (const IndexError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("cross_entropy"), std::string::npos) << what;
    EXPECT_NE(what.find("label 4"), std::string::npos) << what;
    EXPECT_NE(what.find("row 1"), std::string::npos) << what;
    EXPECT_NE(what.find("4 classes"), std::string::npos) << what;
  }
  EXPECT_THROW(softmax_cross_entropy(logits, Tensor::from_vector<int64_t>({0, 1, 2}, {3}), 1.5),
               ValueError);
  EXPECT_THROW(softmax_cross_entropy(logits, Tensor::zeros({3})), DTypeError);
}

}  // namespace
}  // namespace tessera
