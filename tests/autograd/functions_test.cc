// Forward semantics and errors of autograd/functions.h that a gradient check cannot see (the
// gradients themselves are checked in gradcheck_test.cc).

#include "tessera/autograd/functions.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"
#include "testing/text.h"

namespace tessera::autograd {
namespace functions_test {

using testing::tensors_close;

Tensor tensor(std::vector<double> values, Shape shape) {
  return Tensor::from_vector(values, shape);
}

// Runs f, expects it to throw E, and returns what() (empty when it did not throw).
template <typename E, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

using tessera::testing::contains;

TEST(DropoutOp, ZeroesOrScalesEveryElementAndTheGradientUsesTheSameMask) {
  Generator gen(5);
  Variable x(Tensor::ones({2000}, DType::kFloat64), true);
  Variable y = dropout(x, 0.3, gen);
  std::vector<double> out = y.data().to_vector<double>();
  int zeros = 0;
  for (double v : out) {
    if (v == 0.0) {
      ++zeros;
    } else {
      EXPECT_DOUBLE_EQ(v, 1.0 / 0.7);
    }
  }
  // 600 expected; a binomial(2000, 0.3) lies within 100 of it with overwhelming probability.
  EXPECT_GT(zeros, 500);
  EXPECT_LT(zeros, 700);
  sum(y).backward();
  EXPECT_TRUE(tensors_close(x.grad(), y.data()));
}

TEST(DropoutOp, KeepsTheExpectedValue) {
  Generator gen(9);
  Variable x(Tensor::full({20000}, 2.0, DType::kFloat64), false);
  double m = mean(dropout(x, 0.5, gen)).data().item();
  EXPECT_NEAR(m, 2.0, 0.05);
}

TEST(DropoutOp, DrawsTheSameMaskFromTheSameSeed) {
  Variable x(Tensor::ones({64}), false);
  Generator a(42), b(42), c(43);
  Tensor ya = dropout(x, 0.5, a).data();
  Tensor yb = dropout(x, 0.5, b).data();
  Tensor yc = dropout(x, 0.5, c).data();
  EXPECT_TRUE(testing::tensors_equal(ya, yb));
  EXPECT_FALSE(testing::tensors_equal(ya, yc));
}

TEST(DropoutOp, ShardsTogetherDropWhatTheWholeBatchDrops) {
  // A batch of 6 rows of 5 split over 3 shards: shard r holds rows r and r + 3.
  Variable whole(Tensor::ones({6, 5}), false);
  Generator g(11);
  const std::vector<float> expected = dropout(whole, 0.5, g).data().to_vector<float>();
  for (int r = 0; r < 3; ++r) {
    Generator same(11);
    Variable part(Tensor::ones({2, 5}), false);
    const std::vector<float> got = dropout(part, 0.5, same, r, 3).data().to_vector<float>();
    for (int i = 0; i < 2; ++i) {
      for (int c = 0; c < 5; ++c) {
        EXPECT_EQ(got[static_cast<std::size_t>(i * 5 + c)],
                  expected[static_cast<std::size_t>((r + 3 * i) * 5 + c)])
            << "shard " << r << " row " << i << " column " << c;
      }
    }
    // Every shard consumed the same draws: their generators stay in step.
    EXPECT_EQ(same.uniform(), Generator(g).uniform());
  }
  EXPECT_THROW((void)dropout(whole, 0.5, g, 3, 3), ValueError);
}

TEST(DropoutOp, WithZeroProbabilityIsTheIdentity) {
  Generator gen(1);
  Variable x(tensor({1, -2, 3}, {3}), true);
  Variable y = dropout(x, 0.0, gen);
  EXPECT_TRUE(testing::tensors_equal(y.data(), x.data()));
}

TEST(DropoutOp, RejectsAProbabilityOutsideZeroToOne) {
  Generator gen(1);
  Variable x(tensor({1, 2}, {2}), true);
  EXPECT_THROW(dropout(x, 1.0, gen), ValueError);
  EXPECT_THROW(dropout(x, -0.1, gen), ValueError);
}

TEST(SumAndMean, SumAndMeanGiveTheShapesOfTheirAxes) {
  Variable x(Tensor::ones({2, 3, 4}, DType::kFloat64), true);
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(sum(x, {1}).shape(), (Shape{2, 4}));
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(sum(x, {-1}).shape(), (Shape{2, 3}));
  EXPECT_EQ(sum(x, {0, -1}, true).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(mean(x, {0, 2}).shape(), (Shape{3}));
  EXPECT_DOUBLE_EQ(mean(x, {0, 2}).data().at({1}), 1.0);
  EXPECT_DOUBLE_EQ(sum(x, {0, 2}).data().at({1}), 8.0);
}

TEST(Losses, CrossEntropyMatchesAHandComputation) {
  Variable logits(tensor({1, 2, 3, 0, 0, 0}, {2, 3}), true);
  Tensor labels = Tensor::from_vector<int64_t>({2, 1}, {2});
  double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  double expected = ((lse0 - 3.0) + std::log(3.0)) / 2.0;
  EXPECT_NEAR(cross_entropy(logits, labels).data().item(), expected, 1e-12);
  // Smoothing 0.3: 0.7 * nll + 0.3 * mean over classes of -log p.
  double smooth0 = lse0 - 2.0;
  double smooth1 = std::log(3.0);
  double smoothed = (0.7 * (lse0 - 3.0) + 0.3 * smooth0 + 0.7 * std::log(3.0) + 0.3 * smooth1) / 2;
  EXPECT_NEAR(cross_entropy(logits, labels, 0.3).data().item(), smoothed, 1e-12);
}

TEST(Losses, MseAndBceMatchAHandComputation) {
  Variable a(tensor({1, 2, 3}, {3}), true);
  Variable b(tensor({1, 0, 5}, {3}), false);
  EXPECT_NEAR(mse_loss(a, b).data().item(), (0.0 + 4.0 + 4.0) / 3.0, 1e-12);
  Variable logits(tensor({0.0, 2.0, -100.0}, {3}), true);
  Variable target(tensor({1.0, 0.0, 0.0}, {3}), false);
  double expected = (std::log(2.0) + std::log1p(std::exp(2.0)) + std::log1p(std::exp(-100.0))) / 3;
  double got = binary_cross_entropy_with_logits(logits, target).data().item();
  EXPECT_NEAR(got, expected, 1e-12);
  EXPECT_TRUE(std::isfinite(got));
}

TEST(Normalization, LayerNormGivesZeroMeanUnitVarianceRows) {
  Generator gen(3);
  Variable x(Tensor::randn({4, 6}, gen, DType::kFloat64), true);
  Variable w(Tensor::ones({6}, DType::kFloat64), true);
  Variable b(Tensor::zeros({6}, DType::kFloat64), true);
  Tensor y = layer_norm(x, w, b, 0.0).data();
  for (int64_t r = 0; r < 4; ++r) {
    double m = 0, s = 0;
    for (int64_t c = 0; c < 6; ++c) m += y.at({r, c}) / 6;
    for (int64_t c = 0; c < 6; ++c) s += (y.at({r, c}) - m) * (y.at({r, c}) - m) / 6;
    EXPECT_NEAR(m, 0.0, 1e-12);
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

TEST(Normalization, BatchNormUpdatesRunningStatisticsWithTheUnbiasedVariance) {
  // Channel 0 sees {1, 3}, channel 1 sees {2, 6}: means 2 and 4, unbiased variances 2 and 8.
  Variable x(tensor({1, 2, 3, 6}, {2, 2}), true);
  Variable w(Tensor::ones({2}, DType::kFloat64), true);
  Variable b(Tensor::zeros({2}, DType::kFloat64), true);
  Tensor running_mean = Tensor::zeros({2}, DType::kFloat64);
  Tensor running_var = Tensor::ones({2}, DType::kFloat64);
  Tensor y = batch_norm(x, w, b, running_mean, running_var, true, 0.1, 0.0).data();
  EXPECT_TRUE(tensors_close(running_mean, tensor({0.2, 0.4}, {2})));
  EXPECT_TRUE(tensors_close(running_var, tensor({0.9 + 0.2, 0.9 + 0.8}, {2})));
  EXPECT_TRUE(tensors_close(y, tensor({-1, -1, 1, 1}, {2, 2})));
  // Evaluation normalises with the running statistics.
  Tensor e = batch_norm(x, w, b, running_mean, running_var, false, 0.1, 0.0).data();
  EXPECT_NEAR(e.at({0, 0}), (1 - 0.2) / std::sqrt(1.1), 1e-12);
  EXPECT_NEAR(e.at({1, 1}), (6 - 0.4) / std::sqrt(1.7), 1e-12);
}

TEST(AutogradErrors, LinearNamesTheOpAndBothShapes) {
  Variable x(Tensor::zeros({2, 3}), true);
  Variable w(Tensor::zeros({4, 5}), true);
  std::string what = error_of<ShapeError>([&] { (void)linear(x, w, Variable()); });
  EXPECT_TRUE(contains(what, "linear")) << what;
  EXPECT_TRUE(contains(what, "[2,3]")) << what;
  EXPECT_TRUE(contains(what, "[4,5]")) << what;
  Variable w_ok(Tensor::zeros({4, 3}), true);
  Variable bias(Tensor::zeros({5}), true);
  what = error_of<ShapeError>([&] { (void)linear(x, w_ok, bias); });
  EXPECT_TRUE(contains(what, "linear")) << what;
  EXPECT_TRUE(contains(what, "[5]")) << what;
  EXPECT_TRUE(contains(what, "[4,3]")) << what;
}

TEST(AutogradErrors, MatmulNamesTheOpAndBothShapes) {
  Variable a(Tensor::zeros({2, 3}), true);
  Variable b(Tensor::zeros({4, 5}), true);
  std::string what = error_of<ShapeError>([&] { (void)matmul(a, b); });
  EXPECT_TRUE(contains(what, "matmul") && contains(what, "[2,3]") && contains(what, "[4,5]"))
      << what;
}

TEST(AutogradErrors, CrossEntropyLabelOutOfRangeNamesTheRowAndTheLabel) {
  Variable logits(Tensor::zeros({3, 4}), true);
  Tensor labels = Tensor::from_vector<int64_t>({0, 1, 7}, {3});
  std::string what = error_of<IndexError>([&] { (void)cross_entropy(logits, labels); });
  EXPECT_TRUE(contains(what, "cross_entropy")) << what;
  EXPECT_TRUE(contains(what, "label 7")) << what;
  EXPECT_TRUE(contains(what, "row 2")) << what;
  Tensor negative = Tensor::from_vector<int32_t>({0, -1, 0}, {3});
  what = error_of<IndexError>([&] { (void)cross_entropy(logits, negative); });
  EXPECT_TRUE(contains(what, "label -1") && contains(what, "row 1")) << what;
}

TEST(AutogradErrors, LossesOfMismatchedShapesNameBothShapes) {
  Variable a(Tensor::zeros({2, 3}), true);
  Variable b(Tensor::zeros({3, 2}), false);
  std::string what = error_of<ShapeError>([&] { (void)mse_loss(a, b); });
  EXPECT_TRUE(contains(what, "mse_loss") && contains(what, "[2,3]") && contains(what, "[3,2]"))
      << what;
  what = error_of<ShapeError>([&] { (void)binary_cross_entropy_with_logits(a, b); });
  EXPECT_TRUE(contains(what, "binary_cross_entropy_with_logits") && contains(what, "[2,3]") &&
              contains(what, "[3,2]"))
      << what;
  Variable labels_shape(Tensor::zeros({2, 4}), true);
  what = error_of<ShapeError>([&] {
    (void)cross_entropy(labels_shape, Tensor::from_vector<int64_t>({0, 1, 2}, {3}));
  });
  EXPECT_TRUE(contains(what, "cross_entropy") && contains(what, "[2,4]") && contains(what, "[3]"))
      << what;
}

TEST(AutogradErrors, EmbeddingIndexOutOfRangeNamesTheIndexAndTheRows) {
  Variable w(Tensor::zeros({5, 2}), true);
  Tensor idx = Tensor::from_vector<int64_t>({1, 5}, {2});
  std::string what = error_of<IndexError>([&] { (void)embedding(w, idx); });
  EXPECT_TRUE(contains(what, "embedding") && contains(what, "index 5") && contains(what, "5 rows"))
      << what;
}

TEST(AutogradErrors, NormalizationNamesTheShapes) {
  Variable x(Tensor::zeros({2, 3}), true);
  Variable w(Tensor::zeros({4}), true);
  std::string what = error_of<ShapeError>([&] { (void)layer_norm(x, w, w, 1e-5); });
  EXPECT_TRUE(contains(what, "layer_norm") && contains(what, "[2,3]") && contains(what, "[4]"))
      << what;
  what =
      error_of<ShapeError>([&] { (void)batch_norm(x, w, w, Tensor(), Tensor(), true, 0.1, 1e-5); });
  EXPECT_TRUE(contains(what, "batch_norm") && contains(what, "[2,3]") && contains(what, "[4]"))
      << what;
}

TEST(AutogradErrors, DtypeMismatchNamesBothDtypes) {
  Variable a(Tensor::zeros({2}), true);
  Variable b(Tensor::zeros({2}, DType::kFloat64), true);
  std::string what = error_of<DTypeError>([&] { (void)add(a, b); });
  EXPECT_TRUE(contains(what, "add") && contains(what, "float32") && contains(what, "float64"))
      << what;
}

}  // namespace functions_test
}  // namespace tessera::autograd
