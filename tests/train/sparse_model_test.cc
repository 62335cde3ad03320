// The sparse models' math below train_sparse: gradients against finite differences, and AUC.
#include "sparse_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "auc.h"
#include "tessera/core/random.h"

namespace tessera::train {
namespace {

ModelConfig fm(int64_t factors) {
  ModelConfig m;
  m.type = factors > 0 ? "fm" : "logistic";
  m.factors = factors > 0 ? factors : 8;
  m.hash_rows = 1000;
  return m;
}

// The log loss of one record as a function of its rows, and its gradient by backward().
void check_gradient(const SparseModel& model, const std::vector<float>& values, float label) {
  Generator gen(7);
  const auto rows_count = static_cast<int64_t>(values.size()) + 1;
  std::vector<float> rows(static_cast<size_t>(rows_count * model.dim()));
  for (float& r : rows) r = static_cast<float>(gen.uniform(-0.5, 0.5));
  std::vector<float> grads(rows.size(), 0.0f);
  const double loss = model.backward(rows, values, label, 1.0f, grads);
  EXPECT_NEAR(loss, log_loss(model.logit(rows, values), label), 1e-12);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i % model.dim() != 0 && i < static_cast<size_t>(model.dim())) {
      EXPECT_EQ(grads[i], 0.0f) << "the bias row has a weight only";
      continue;
    }
    std::vector<float> up = rows;
    std::vector<float> down = rows;
    const float h = 1e-3f;
    up[i] += h;
    down[i] -= h;
    const double numeric =
        (log_loss(model.logit(up, values), label) - log_loss(model.logit(down, values), label)) /
        (2.0 * h);
    EXPECT_NEAR(grads[i], numeric, 1e-3 * (1.0 + std::abs(numeric))) << "row float " << i;
  }
}

TEST(SparseModel, LogisticGradientMatchesFiniteDifferences) {
  const SparseModel model(fm(0));
  EXPECT_EQ(model.dim(), 1);
  check_gradient(model, {1.0f, 0.5f, -2.0f}, 1.0f);
  check_gradient(model, {1.0f}, 0.0f);
}

TEST(SparseModel, FactorizationMachineGradientMatchesFiniteDifferences) {
  const SparseModel model(fm(3));
  EXPECT_EQ(model.dim(), 4);
  check_gradient(model, {1.0f, 0.5f, -2.0f, 1.0f}, 1.0f);
  check_gradient(model, {0.25f, 1.0f}, 0.0f);
}

// The pairwise term is sum over pairs i < j of <v_i, v_j> x_i x_j, written out here.
TEST(SparseModel, FactorizationMachineLogitIsBiasWeightsAndPairs) {
  const SparseModel model(fm(2));
  // bias row, then rows [w, v1, v2] of three features
  const std::vector<float> rows{0.5f, 0, 0, 0.1f, 1, 2, -0.2f, 3, -1, 0.3f, 0.5f, 0.5f};
  const std::vector<float> x{1.0f, 2.0f, -1.0f};
  const double linear = 0.5 + 0.1 * 1 - 0.2 * 2 + 0.3 * -1;
  const double pairs =
      (1 * 3 + 2 * -1) * 1 * 2 + (1 * 0.5 + 2 * 0.5) * 1 * -1 + (3 * 0.5 + -1 * 0.5) * 2 * -1;
  EXPECT_NEAR(model.logit(rows, x), linear + pairs, 1e-6);
}

TEST(SparseModel, KeysStayInTheTableAndTheBiasHasItsOwnRow) {
  const SparseModel model(fm(2));
  EXPECT_EQ(model.bias_key(), 1000u);
  for (int64_t feature : {int64_t{0}, int64_t{1}, int64_t{1} << 40, int64_t{9223372036854775806}}) {
    EXPECT_LT(model.key_of(feature), 1000u);
  }
  EXPECT_NE(model.key_of(0), model.key_of(1)) << "consecutive ids spread over the rows";
}

TEST(SparseModel, LogLossIsStableForLargeLogits) {
  EXPECT_NEAR(log_loss(800.0, 1.0f), 0.0, 1e-12);
  EXPECT_NEAR(log_loss(800.0, 0.0f), 800.0, 1e-9);
  EXPECT_NEAR(log_loss(-800.0, 1.0f), 800.0, 1e-9);
  EXPECT_NEAR(sigmoid(-800.0), 0.0, 1e-300);
  EXPECT_NEAR(log_loss(0.0, 1.0f), std::log(2.0), 1e-12);
}

TEST(RocAuc, CountsOrderedPairsAndTiesHalf) {
  EXPECT_DOUBLE_EQ(
      roc_auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, std::vector<float>{0, 0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.5f, 0.5f}, std::vector<float>{0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{3, 2, 1}, std::vector<float>{1, 0, 0}), 1.0);
  EXPECT_TRUE(std::isnan(roc_auc(std::vector<float>{1, 2}, std::vector<float>{1, 1})));
}

}  // namespace
}  // namespace tessera::train
