// ALS on one process and on several (ranks as threads), against ratings from a known low-rank
// model.
#include "tessera/estimators/als.h"

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/core/serialize.h"
#include "tessera/data/in_memory_dataset.h"
#include "testing/text.h"

namespace tessera::estimators {
namespace {

constexpr double kNoise = 0.3;

// Ratings of `users` x `items` pairs, each rated with probability `density`: the dot product of
// rank-3 factors plus normal noise of deviation kNoise (explicit), or 1 where that product plus
// noise is above 0.8 (implicit: the user's favourite items). Rows [user, item, rating], in a
// shuffled order; every `held_out`-th pair goes to `test`.
struct Ratings {
  std::vector<float> train, test;
};

Ratings low_rank(int64_t users, int64_t items, double density, bool implicit, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  constexpr int kRank = 3;
  std::vector<double> u(static_cast<size_t>(users * kRank));
  std::vector<double> v(static_cast<size_t>(items * kRank));
  for (double& x : u) x = normal(gen) / std::pow(kRank, 0.25);
  for (double& x : v) x = normal(gen) / std::pow(kRank, 0.25);
  Ratings r;
  for (int64_t a = 0; a < users; ++a) {
    for (int64_t b = 0; b < items; ++b) {
      double s = 0;
      for (int q = 0; q < kRank; ++q)
        s += u[static_cast<size_t>(a * kRank + q)] * v[static_cast<size_t>(b * kRank + q)];
      const double value = s + kNoise * normal(gen);
      if (uniform(gen) >= density || (implicit && value < 0.8)) continue;
      auto& set = uniform(gen) < 0.1 ? r.test : r.train;
      set.insert(set.end(), {static_cast<float>(a), static_cast<float>(b),
                             static_cast<float>(implicit ? 1.0 : value)});
    }
  }
  return r;
}

std::shared_ptr<data::Dataset> table(const std::vector<float>& rows, int64_t columns = 3) {
  const auto n = static_cast<int64_t>(rows.size()) / columns;
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(rows, {n, columns}),
                                                 Tensor::zeros({n}, DType::kInt64));
}

std::unique_ptr<RowSource> rating_rows(const std::shared_ptr<data::Dataset>& data, int rank = 0,
                                       int ranks = 1) {
  return dataset_rows(data, {.rank = rank, .ranks = ranks, .block_rows = 500, .target_feature = 2});
}

template <typename E, typename F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one saying " << part;
  } catch (const E& e) {
    EXPECT_TRUE(testing::contains(e.what(), part)) << e.what();
  }
}

AlsOptions als_options(bool implicit) {
  AlsOptions o;
  o.factors = 3;
  o.l2 = implicit ? 0.1 : 0.01;
  o.iterations = 10;
  o.implicit = implicit;
  o.seed = 4;
  return o;
}

TEST(Als, RecoversExplicitRatingsToTheNoiseFloor) {
  const Ratings r = low_rank(300, 200, 0.5, false, 1);
  auto train = rating_rows(table(r.train));
  auto test = rating_rows(table(r.test));
  std::vector<double> objectives;
  AlsOptions o = als_options(false);
  o.on_iteration = [&](int64_t, double objective) { objectives.push_back(objective); };
  const AlsFit fit = fit_als(*train, nullptr, o);
  EXPECT_EQ(fit.ratings, static_cast<int64_t>(r.train.size() / 3));
  ASSERT_EQ(objectives.size(), 10U);
  for (size_t t = 1; t < objectives.size(); ++t) {
    EXPECT_LE(objectives[t], objectives[t - 1] * (1 + 1e-9)) << "iteration " << t + 1;
  }
  const AlsScore score = score_als(fit.model, *test, nullptr, 10);
  EXPECT_EQ(score.unseen, 0);
  EXPECT_GT(score.rmse, 0.9 * kNoise);
  EXPECT_LT(score.rmse, 1.05 * kNoise) << "the noise floor is " << kNoise;
}

// Precision at 10 of the favourite items held out: chance is their share of the unseen items.
TEST(Als, ImplicitFeedbackRecommendsTheHeldOutFavourites) {
  const Ratings r = low_rank(300, 200, 0.8, true, 2);
  auto train = rating_rows(table(r.train));
  auto test = rating_rows(table(r.test));
  const AlsFit fit = fit_als(*train, nullptr, als_options(true));
  const AlsScore score = score_als(fit.model, *test, nullptr, 10);
  ASSERT_GT(score.users, 200);
  const double chance = static_cast<double>(r.test.size() / 3) / score.users / 170.0;
  EXPECT_GT(score.precision, 4 * chance) << "chance " << chance;
  // The training rows hold no unseen item: no precision to report.
  EXPECT_EQ(score_als(fit.model, *train, nullptr, 10).users, 0);
}

// Users and items split over 2 and 4 processes solve the same systems in the same order.
TEST(Als, SeveralProcessesFitOneProcessesFactorsBitForBit) {
  for (bool implicit : {false, true}) {
    const Ratings r = low_rank(97, 61, 0.4, implicit, 3);
    auto data = table(r.train);
    auto all = rating_rows(data);
    const AlsFit one = fit_als(*all, nullptr, als_options(implicit));
    for (int ranks : {2, 4}) {
      std::vector<AlsFit> fits(static_cast<size_t>(ranks));
      comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
        auto rows = rating_rows(data, group.rank(), ranks);
        fits[static_cast<size_t>(group.rank())] = fit_als(*rows, &group, als_options(implicit));
      });
      for (const AlsFit& f : fits) {
        EXPECT_EQ(f.model.user_factors, one.model.user_factors) << ranks << " ranks";
        EXPECT_EQ(f.model.item_factors, one.model.item_factors) << ranks << " ranks";
        EXPECT_EQ(f.model.rated_from, one.model.rated_from) << ranks << " ranks";
        EXPECT_EQ(f.model.rated, one.model.rated) << ranks << " ranks";
        EXPECT_NEAR(f.objective, one.objective, 1e-12 * one.objective) << ranks << " ranks";
      }
    }
  }
}

TEST(Als, UnseenUsersAndItemsPredictNothing) {
  // User 1 and item 2 have no ratings; user 3 and item 5 lie beyond the ids training saw.
  auto rows = rating_rows(table({0, 0, 1.0F, 0, 1, 2.0F, 2, 0, 3.0F, 2, 1, 1.0F}));
  const AlsFit fit = fit_als(*rows, nullptr, als_options(false));
  EXPECT_EQ(fit.model.users, 3);
  EXPECT_EQ(fit.model.items, 2);
  EXPECT_TRUE(std::isfinite(fit.model.predict(2, 1)));
  EXPECT_TRUE(std::isnan(fit.model.predict(1, 0)));
  EXPECT_TRUE(std::isnan(fit.model.predict(0, 5)));
  EXPECT_TRUE(std::isnan(fit.model.predict(3, 0)));
  auto test = rating_rows(table({0, 1, 2.0F, 1, 0, 1.0F, 9, 9, 1.0F}));
  const AlsScore score = score_als(fit.model, *test, nullptr, 10);
  EXPECT_EQ(score.rows, 1);
  EXPECT_EQ(score.unseen, 2);
}

TEST(Als, BadRowsAreNamed) {
  auto fractional = rating_rows(table({0, 0, 1.0F, 1.5F, 0, 1.0F}));
  expect_error<FormatError>([&] { (void)fit_als(*fractional, nullptr, als_options(false)); },
                            "the user id 1.5 is not an integer in [0, 2^24)");
  auto negative = rating_rows(table({0, -1, 1.0F}));
  expect_error<FormatError>([&] { (void)fit_als(*negative, nullptr, als_options(false)); },
                            "the item id -1 is not an integer");
  auto nan = rating_rows(table({0, 0, std::nanf("")}));
  expect_error<FormatError>([&] { (void)fit_als(*nan, nullptr, als_options(false)); },
                            "the rating nan is not a number");
  auto wide = rating_rows(table({0, 0, 0, 1.0F}, 4));
  expect_error<ValueError>([&] { (void)fit_als(*wide, nullptr, als_options(false)); },
                           "has 3 columns besides the rating");
}

TEST(Als, ModelBytesRoundTripAndBadOnesAreRefused) {
  const Ratings r = low_rank(40, 30, 0.5, false, 5);
  auto rows = rating_rows(table(r.train));
  const AlsModel m = fit_als(*rows, nullptr, als_options(false)).model;
  std::ostringstream out;
  BinaryWriter w(out);
  m.write(w);
  const std::string bytes = out.str();
  std::istringstream in(bytes);
  BinaryReader reader(in, "model.ckpt");
  const AlsModel back = AlsModel::read(reader);
  EXPECT_EQ(back.user_factors, m.user_factors);
  EXPECT_EQ(back.rated, m.rated);
  EXPECT_EQ(back.predict(3, 4), m.predict(3, 4));
  EXPECT_EQ(back.recommend(3, 5), m.recommend(3, 5));

  std::string bad = bytes;  // the last rated item of the last user: beyond the items
  const size_t last_rated = bytes.size() - m.item_ratings.size() * 4 - 4;
  bad[last_rated] = static_cast<char>(0x7f);
  std::istringstream bad_in(bad);
  BinaryReader bad_reader(bad_in, "model.ckpt");
  expect_error<FormatError>([&] { (void)AlsModel::read(bad_reader); },
                            "model.ckpt: an ALS model whose rated items disagree");
  std::istringstream cut(bytes.substr(0, bytes.size() / 2));
  BinaryReader cut_reader(cut, "model.ckpt");
  EXPECT_THROW(AlsModel::read(cut_reader), FormatError);
}

}  // namespace
}  // namespace tessera::estimators
