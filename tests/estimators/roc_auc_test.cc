// The histogram ROC AUC against the area counted pair by pair.
#include "tessera/estimators/roc_auc.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace tessera::estimators {
namespace {

TEST(AucHistogram, MatchesTheAreaCountedPairByPair) {
  std::mt19937 gen(4);
  std::uniform_real_distribution<double> uniform;
  std::vector<double> p(3000);
  std::vector<bool> positive(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    positive[i] = uniform(gen) < 0.4;
    // Positives lean high: an area well inside (0.5, 1).
    p[i] = std::pow(uniform(gen), positive[i] ? 0.6 : 1.4);
  }
  AucHistogram whole;
  AucHistogram first;
  AucHistogram second;
  double right = 0;
  double pairs = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    whole.add(p[i], positive[i]);
    (i < 1000 ? first : second).add(p[i], positive[i]);
    if (!positive[i]) continue;
    for (size_t j = 0; j < p.size(); ++j) {
      if (positive[j]) continue;
      pairs += 1;
      right += p[i] > p[j] ? 1.0 : p[i] == p[j] ? 0.5 : 0.0;
    }
  }
  EXPECT_GT(right / pairs, 0.6);
  EXPECT_NEAR(whole.auc(), right / pairs, 1e-4);
  first.add(second);
  EXPECT_EQ(first.auc(), whole.auc()) << "histograms add up to the whole one";
}

TEST(AucHistogram, TiesCountHalfAndOneClassHasNoArea) {
  AucHistogram ties;
  for (int i = 0; i < 10; ++i) ties.add(0.3, i % 2 == 0);
  EXPECT_DOUBLE_EQ(ties.auc(), 0.5);
  AucHistogram one_class;
  one_class.add(0.9, true);
  EXPECT_TRUE(std::isnan(one_class.auc()));
}

}  // namespace
}  // namespace tessera::estimators
