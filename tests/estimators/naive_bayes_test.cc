// Naive Bayes: its parameters by hand on a small table, several processes against one, and the
// errors bad rows get.
#include "tessera/estimators/naive_bayes.h"

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/data/in_memory_dataset.h"
#include "testing/text.h"

namespace tessera::estimators {
namespace {

std::shared_ptr<data::InMemoryDataset> table(std::vector<float> x, std::vector<int64_t> y,
                                             int64_t d) {
  const auto n = static_cast<int64_t>(y.size());
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {n, d}),
                                                 Tensor::from_vector(y, {n}));
}

NaiveBayesOptions options(const std::string& distribution) {
  NaiveBayesOptions o;
  o.distribution = distribution;
  return o;
}

// Rows (1, 0) and (3, 2) of class 0, (0, 4) and (0, 6) and (0, 2) of class 1.
std::shared_ptr<data::InMemoryDataset> small() {
  return table({1, 0, 3, 2, 0, 4, 0, 6, 0, 2}, {0, 0, 1, 1, 1}, 2);
}

TEST(NaiveBayes, GaussianMeansAndVariancesByHand) {
  auto rows = dataset_rows(small(), {});
  NaiveBayesOptions o = options("gaussian");
  o.var_smoothing = 0.0;
  const NaiveBayesModel m = fit_naive_bayes(*rows, nullptr, o);
  ASSERT_EQ(m.classes, 2);
  EXPECT_NEAR(m.log_prior[0], std::log(2.0 / 5), 1e-12);
  EXPECT_NEAR(m.log_prior[1], std::log(3.0 / 5), 1e-12);
  // class 0: means (2, 1), variances (1, 1); class 1: means (0, 4), variances (0, 8/3).
  EXPECT_EQ(m.first, (std::vector<double>{2, 1, 0, 4}));
  EXPECT_NEAR(m.second[0], 1, 1e-12);
  EXPECT_NEAR(m.second[1], 1, 1e-12);
  EXPECT_NEAR(m.second[2], 0, 1e-12);
  EXPECT_NEAR(m.second[3], 8.0 / 3, 1e-12);
  // var_smoothing adds its share of the largest feature variance (of column 2: 4.16).
  o.var_smoothing = 0.5;
  const NaiveBayesModel smooth = fit_naive_bayes(*rows, nullptr, o);
  EXPECT_NEAR(smooth.second[0], 1 + 0.5 * 4.16, 1e-9);
}

TEST(NaiveBayes, MultinomialAndBernoulliProbabilitiesByHand) {
  auto rows = dataset_rows(small(), {});
  const NaiveBayesModel mult = fit_naive_bayes(*rows, nullptr, options("multinomial"));
  // class 0 counts (4, 2) of 6, alpha 1 over 2 features: (5/8, 3/8); class 1: (1/14, 13/14).
  EXPECT_NEAR(mult.first[0], std::log(5.0 / 8), 1e-12);
  EXPECT_NEAR(mult.first[1], std::log(3.0 / 8), 1e-12);
  EXPECT_NEAR(mult.first[2], std::log(1.0 / 14), 1e-12);
  EXPECT_NEAR(mult.first[3], std::log(13.0 / 14), 1e-12);
  NaiveBayesOptions o = options("bernoulli");
  o.binarize = 1.5;
  const NaiveBayesModel bern = fit_naive_bayes(*rows, nullptr, o);
  // class 0: feature 1 above 1.5 in 1 of 2 rows, feature 2 in 1 of 2: (2/4, 2/4); class 1:
  // (1/5, 4/5).
  EXPECT_NEAR(bern.first[0], std::log(0.5), 1e-12);
  EXPECT_NEAR(bern.first[2], std::log(0.2), 1e-12);
  EXPECT_NEAR(bern.second[3], std::log(0.2), 1e-12);
  // (3, 5): present, present. Class 1's likelihood: 3/5 * 1/5 * 4/5; class 0's: 2/5 * 1/4.
  const std::vector<double> jll =
      bern.log_likelihoods(Tensor::from_vector(std::vector<float>{3, 5}, {1, 2}));
  EXPECT_NEAR(jll[0], std::log(0.4 * 0.25), 1e-12);
  EXPECT_NEAR(jll[1], std::log(0.6 * 0.2 * 0.8), 1e-12);
}

TEST(NaiveBayes, SeveralProcessesFitOneProcessesModel) {
  std::mt19937 gen(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(900 * 4);
  std::vector<int64_t> y(900);
  for (size_t r = 0; r < y.size(); ++r) {
    y[r] = static_cast<int64_t>(r % 3);
    for (size_t f = 0; f < 4; ++f) x[r * 4 + f] = std::abs(normal(gen) + static_cast<float>(y[r]));
  }
  auto data = table(x, y, 4);
  for (const std::string distribution : {"gaussian", "multinomial", "bernoulli"}) {
    auto one_rows = dataset_rows(data, {.block_rows = 64});
    const NaiveBayesModel one = fit_naive_bayes(*one_rows, nullptr, options(distribution));
    for (int ranks : {2, 4}) {
      std::vector<NaiveBayesModel> fits(static_cast<size_t>(ranks));
      comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
        auto rows = dataset_rows(data, {.rank = group.rank(), .ranks = ranks, .block_rows = 50});
        fits[static_cast<size_t>(group.rank())] =
            fit_naive_bayes(*rows, &group, options(distribution));
      });
      for (const NaiveBayesModel& m : fits) {
        ASSERT_EQ(m.first.size(), one.first.size());
        for (size_t e = 0; e < one.first.size(); ++e) {
          EXPECT_NEAR(m.first[e], one.first[e], 1e-9 * std::abs(one.first[e]) + 1e-12)
              << distribution << ", " << ranks << " ranks";
          EXPECT_NEAR(m.second[e], one.second[e], 1e-9 * std::abs(one.second[e]) + 1e-12)
              << distribution << ", " << ranks << " ranks";
        }
        EXPECT_EQ(m.log_prior, one.log_prior);
      }
    }
  }
}

TEST(NaiveBayes, BadRowsAreClearErrors) {
  auto negative = table({1, 2, -3, 4}, {0, 1}, 2);
  negative->set_origin({.file = "counts.csv", .lines = {2, 3}});
  auto rows = dataset_rows(negative, {});
  try {
    (void)fit_naive_bayes(*rows, nullptr, options("multinomial"));
    FAIL() << "a negative count accepted";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "counts.csv:3: feature 1 is -3")) << e.what();
  }
  auto one_class = dataset_rows(table({1, 2, 3, 4}, {0, 0}, 2), {});
  EXPECT_THROW((void)fit_naive_bayes(*one_class, nullptr, options("gaussian")), ValueError);
  EXPECT_THROW((void)fit_naive_bayes(*one_class, nullptr, options("poisson")), ValueError);
}

TEST(NaiveBayes, ItsBytesReadBack) {
  auto rows = dataset_rows(small(), {});
  const NaiveBayesModel m = fit_naive_bayes(*rows, nullptr, options("bernoulli"));
  std::ostringstream out;
  BinaryWriter w(out);
  m.write(w);
  std::istringstream in(out.str());
  BinaryReader r(in, "model.ckpt");
  const NaiveBayesModel back = NaiveBayesModel::read(r);
  EXPECT_EQ(back.distribution, "bernoulli");
  EXPECT_EQ(back.first, m.first);
  EXPECT_EQ(back.second, m.second);
  EXPECT_EQ(back.log_prior, m.log_prior);
  std::istringstream cut(out.str().substr(0, out.str().size() - 8));
  BinaryReader short_reader(cut, "model.ckpt");
  EXPECT_THROW((void)NaiveBayesModel::read(short_reader), FormatError);
}

}  // namespace
}  // namespace tessera::estimators
