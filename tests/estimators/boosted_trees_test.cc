// Boosted trees: bins and splits by hand, several processes against one (the same trees, bit for
// bit), missing values, early stopping, and the errors bad labels and bytes get.
#include "tessera/estimators/boosted_trees.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../src/estimators/feature_bins.h"
#include "../comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tessera/data/in_memory_dataset.h"
#include "testing/text.h"

namespace tessera::estimators {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::shared_ptr<data::InMemoryDataset> tree_table(std::vector<float> x, std::vector<int64_t> y,
                                                  int64_t d) {
  const auto n = static_cast<int64_t>(y.size());
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {n, d}),
                                                 Tensor::from_vector(y, {n}));
}

BoostedTreesOptions tree_options(const std::string& objective) {
  BoostedTreesOptions o;
  o.objective = objective;
  o.rounds = 8;
  o.max_depth = 4;
  return o;
}

// 3000 rows of 4 features: two continuous (more distinct values than bins are made from), one of
// a few values, one often missing; the label a noisy function of them (3 classes).
std::shared_ptr<data::InMemoryDataset> mixed(uint32_t seed, int64_t classes, int64_t n = 3000) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> small(0, 5);
  std::vector<float> x(static_cast<size_t>(n * 4));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    float* row = x.data() + r * 4;
    row[0] = normal(gen);
    row[1] = normal(gen);
    row[2] = static_cast<float>(small(gen));
    row[3] = r % 3 == 0 ? kNaN : normal(gen);
    const double score =
        row[0] + 0.5 * row[1] * row[2] + (std::isnan(row[3]) ? 1.0 : row[3]) + 0.7 * normal(gen);
    y[static_cast<size_t>(r)] = classes == 2 ? (score > 0.5 ? 1 : 0)
                                             : (score < 0     ? 0
                                                : score < 1.5 ? 1
                                                              : 2);
  }
  return tree_table(x, y, 4);
}

void expect_same_trees(const BoostedTreesModel& a, const BoostedTreesModel& b,
                       const std::string& what) {
  ASSERT_EQ(a.trees.size(), b.trees.size()) << what;
  EXPECT_EQ(a.base_margin, b.base_margin) << what;
  for (size_t t = 0; t < a.trees.size(); ++t) {
    ASSERT_EQ(a.trees[t].nodes.size(), b.trees[t].nodes.size()) << what << ", tree " << t;
    for (size_t i = 0; i < a.trees[t].nodes.size(); ++i) {
      const TreeNode& p = a.trees[t].nodes[i];
      const TreeNode& q = b.trees[t].nodes[i];
      EXPECT_EQ(p.feature, q.feature) << what << ", tree " << t << ", node " << i;
      EXPECT_EQ(p.bin, q.bin) << what << ", tree " << t << ", node " << i;
      EXPECT_EQ(p.threshold, q.threshold) << what << ", tree " << t << ", node " << i;
      EXPECT_EQ(p.default_left, q.default_left) << what << ", tree " << t << ", node " << i;
      EXPECT_EQ(p.value, q.value) << what << ", tree " << t << ", node " << i;  // bit for bit
    }
  }
}

TEST(FeatureBins, FewValuesGetABinEachAndManyGetQuantiles) {
  EXPECT_EQ(cuts_from({1, 2, 5}, {4, 1, 1}, 8),
            (std::vector<float>{2, 5, std::numeric_limits<float>::infinity()}));
  // Ten values of equal weight into 5 bins: two each.
  std::vector<double> values;
  for (int v = 0; v < 10; ++v) values.push_back(v);
  const std::vector<float> upper = cuts_from(values, std::vector<double>(10, 1.0), 5);
  EXPECT_EQ(upper, (std::vector<float>{2, 4, 6, 8, std::numeric_limits<float>::infinity()}));
  FeatureBins bins;
  bins.upper = {upper};
  bins.offset = {0, 6};
  EXPECT_EQ(bins.bin(0, kNaN), 0);
  EXPECT_EQ(bins.bin(0, -7.0F), 1);
  EXPECT_EQ(bins.bin(0, 1.5F), 1);
  EXPECT_EQ(bins.bin(0, 2.0F), 2);
  EXPECT_EQ(bins.bin(0, 9.0F), 5);
  EXPECT_EQ(bins.bin(0, std::numeric_limits<float>::infinity()), 5);
}

TEST(BoostedTrees, OneRoundOfAStepFitsItExactly) {
  std::vector<float> x;
  std::vector<int64_t> unused;
  for (int r = 0; r < 40; ++r) {
    x.push_back(static_cast<float>(r));
    x.push_back(r < 25 ? 3.0F : 1.0F);  // the target, a step at 25
    unused.push_back(0);
  }
  auto rows = dataset_rows(tree_table(x, unused, 2), {.target_feature = 1});
  BoostedTreesOptions o = tree_options("regression");
  o.rounds = 1;
  o.learning_rate = 1.0;
  o.reg_lambda = 0.0;
  o.max_depth = 1;
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  ASSERT_EQ(fit.model.trees.size(), 1U);
  const Tree& t = fit.model.trees[0];
  ASSERT_EQ(t.nodes.size(), 3U);
  EXPECT_EQ(t.nodes[0].feature, 0);
  EXPECT_EQ(t.nodes[0].threshold, 25.0F);
  EXPECT_NEAR(fit.model.base_margin[0] + t.nodes[1].value, 3.0, 1e-9);
  EXPECT_NEAR(fit.model.base_margin[0] + t.nodes[2].value, 1.0, 1e-9);
  EXPECT_NEAR(fit.loss, 0.0, 1e-9);
  EXPECT_NEAR(score_boosted_trees(fit.model, *rows, nullptr).rmse, 0.0, 1e-9);
}

TEST(BoostedTrees, MissingValuesGoWhereTheyFitBest) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int r = 0; r < 200; ++r) {
    const bool missing = r % 4 == 0;
    x.push_back(missing ? kNaN : static_cast<float>(r % 7));
    y.push_back(missing || r % 7 >= 5 ? 1 : 0);
  }
  auto rows = dataset_rows(tree_table(x, y, 1), {});
  BoostedTreesOptions o = tree_options("binary");
  o.rounds = 20;
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  EXPECT_EQ(score_boosted_trees(fit.model, *rows, nullptr).accuracy, 1.0);
  std::vector<double> predicted;
  std::vector<float> p;
  fit.model.predict(Tensor::from_vector(std::vector<float>{kNaN, 2.0F, 6.0F}, {3, 1}), predicted,
                    p);
  EXPECT_EQ(predicted, (std::vector<double>{1, 0, 1}));
  EXPECT_GT(p[1], 0.9F);
  EXPECT_NEAR(p[0] + p[1], 1.0F, 1e-6);
}

TEST(BoostedTrees, TheRawRowsScoreAsTrainingMeasuredItsQuantisedRows) {
  auto data = mixed(5, 3);
  auto rows = dataset_rows(data, {.block_rows = 128});
  double last = 0.0;
  BoostedTreesOptions o = tree_options("multiclass");
  o.on_round = [&](int64_t, double loss) { last = loss; };
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  EXPECT_EQ(fit.model.classes, 3);
  EXPECT_EQ(fit.model.trees.size(), 8U * 3U);
  const PredictionScore s = score_boosted_trees(fit.model, *rows, nullptr);
  EXPECT_NEAR(s.log_loss, last, 1e-9);
  EXPECT_GT(s.accuracy, 0.75);
}

TEST(BoostedTrees, SeveralProcessesGrowOneProcessesTreesBitForBit) {
  for (const std::string objective : {"binary", "multiclass", "regression"}) {
    auto data = mixed(7, objective == "binary" ? 2 : 3);
    const ShardOptions shard{.block_rows = 100,
                             .target_feature = objective == "regression" ? 0 : -1};
    for (const std::string policy : {"depthwise", "lossguide"}) {
      BoostedTreesOptions o = tree_options(objective);
      o.grow_policy = policy;
      o.max_leaves = policy == "lossguide" ? 6 : 0;
      o.max_bins = 32;
      o.reg_alpha = 0.1;
      auto one_rows = dataset_rows(data, shard);
      const BoostedTreesFit one = fit_boosted_trees(*one_rows, nullptr, o);
      for (int ranks : {2, 4}) {
        std::vector<BoostedTreesFit> fits(static_cast<size_t>(ranks));
        comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
          ShardOptions mine = shard;
          mine.rank = group.rank();
          mine.ranks = ranks;
          mine.block_rows = 64;
          auto rows = dataset_rows(data, mine);
          fits[static_cast<size_t>(group.rank())] = fit_boosted_trees(*rows, &group, o);
        });
        for (const BoostedTreesFit& f : fits) {
          expect_same_trees(one.model, f.model,
                            objective + ", " + policy + ", " + std::to_string(ranks) + " ranks");
        }
      }
    }
  }
}

// Enough rows that the threads share nodes' rows and partitions (each its own histogram), and
// parents of unequal sizes go to different threads: 1, 2 and 3 threads grow the same trees.
TEST(BoostedTrees, AnyNumberOfThreadsGrowsOneThreadsTreesBitForBit) {
  const int saved = num_threads();
  for (const std::string policy : {"depthwise", "lossguide"}) {
    auto data = mixed(11, 2, 40000);
    BoostedTreesOptions o = tree_options("binary");
    o.grow_policy = policy;
    o.max_leaves = policy == "lossguide" ? 12 : 0;
    o.max_depth = 6;
    o.rounds = 3;
    std::vector<BoostedTreesFit> fits;
    for (int threads : {1, 2, 3}) {
      set_core_num_threads(threads);
      auto rows = dataset_rows(data, {.block_rows = 4096});
      fits.push_back(fit_boosted_trees(*rows, nullptr, o));
    }
    set_core_num_threads(saved);
    EXPECT_GT(fits[0].model.trees[0].nodes.size(), 20U) << policy;
    for (size_t i = 1; i < fits.size(); ++i) {
      expect_same_trees(fits[0].model, fits[i].model,
                        policy + ", " + std::to_string(i + 1) + " threads");
    }
  }
}

// A random forest (XGBoost's): one round of trees side by side, each on its own sample of rows
// and of features at each node, drawn by keys so that any number of processes draws the same.
BoostedTreesOptions forest_options(const std::string& objective) {
  BoostedTreesOptions o = tree_options(objective);
  o.rounds = 1;
  o.parallel_trees = 6;
  o.learning_rate = 1.0;
  o.reg_lambda = 1e-5;
  o.subsample = 0.8;
  o.colsample_bynode = 0.5;
  o.seed = 21;
  return o;
}

TEST(BoostedTrees, ForestsOnSeveralProcessesAreOneProcessesForest) {
  auto data = mixed(17, 3);
  const BoostedTreesOptions o = forest_options("multiclass");
  auto one_rows = dataset_rows(data, {});
  const BoostedTreesFit one = fit_boosted_trees(*one_rows, nullptr, o);
  ASSERT_EQ(one.model.trees.size(), 6U * 3U);
  EXPECT_GT(score_boosted_trees(one.model, *one_rows, nullptr).accuracy, 0.7);
  for (int ranks : {2, 4}) {
    std::vector<BoostedTreesFit> fits(static_cast<size_t>(ranks));
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      auto rows = dataset_rows(data, {.rank = group.rank(), .ranks = ranks, .block_rows = 64});
      fits[static_cast<size_t>(group.rank())] = fit_boosted_trees(*rows, &group, o);
    });
    for (const BoostedTreesFit& f : fits) {
      expect_same_trees(one.model, f.model, "forest on " + std::to_string(ranks) + " ranks");
    }
  }
}

TEST(BoostedTrees, EachTreeOfAForestDrawsItsOwnRowsAndFeatures) {
  auto rows = dataset_rows(mixed(19, 2), {});
  BoostedTreesOptions o = forest_options("binary");
  o.parallel_trees = 12;
  o.colsample_bynode = 0.25;  // one feature of the four at each node
  o.max_depth = 1;
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  std::set<int32_t> root_features;
  std::set<double> leaf_values;
  for (const Tree& t : fit.model.trees) {
    root_features.insert(t.nodes[0].feature);
    if (t.nodes.size() > 1) leaf_values.insert(t.nodes[1].value);
  }
  EXPECT_GE(root_features.size(), 3U) << "one feature a node, drawn per tree";
  EXPECT_GE(leaf_values.size(), 6U) << "each tree its own rows";
  // All the rows and features: every tree is the same.
  o.subsample = 1.0;
  o.colsample_bynode = 1.0;
  const BoostedTreesFit same = fit_boosted_trees(*rows, nullptr, o);
  for (const Tree& t : same.model.trees) {
    EXPECT_EQ(t.nodes[0].feature, same.model.trees[0].nodes[0].feature);
    EXPECT_EQ(t.nodes[1].value, same.model.trees[0].nodes[1].value);
  }
}

TEST(BoostedTrees, LossGuidedTreesKeepToTheirLeaves) {
  auto rows = dataset_rows(mixed(9, 2), {});
  BoostedTreesOptions o = tree_options("binary");
  o.grow_policy = "lossguide";
  o.max_depth = 0;
  o.max_leaves = 5;
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  for (const Tree& t : fit.model.trees) EXPECT_EQ(t.nodes.size(), 9U);  // 5 leaves, 4 splits
}

TEST(BoostedTrees, EarlyStoppingKeepsTheBestRound) {
  auto rows = dataset_rows(mixed(11, 2), {});
  BoostedTreesOptions o = tree_options("binary");
  o.rounds = 300;
  o.max_depth = 8;
  o.learning_rate = 0.5;
  o.validation_fraction = 0.3;
  o.early_stopping_rounds = 5;
  std::vector<double> losses;
  o.on_round = [&](int64_t, double loss) { losses.push_back(loss); };
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, o);
  EXPECT_LT(fit.rounds, 300);
  EXPECT_EQ(fit.rounds, fit.best_round + 5);
  EXPECT_EQ(fit.model.trees.size(), static_cast<size_t>(fit.best_round));
  EXPECT_EQ(fit.loss, losses[static_cast<size_t>(fit.best_round - 1)]);
  for (double l : losses) EXPECT_GE(l, fit.loss);
  EXPECT_NEAR(fit.rows, 3000 * 0.7, 100);
}

TEST(BoostedTrees, BadLabelsAndOptionsAreClearErrors) {
  auto data = tree_table({1, 2, 3, 4}, {0, 2}, 2);
  data->set_origin({.file = "clicks.csv", .lines = {2, 3}});
  auto rows = dataset_rows(data, {});
  try {
    (void)fit_boosted_trees(*rows, nullptr, tree_options("binary"));
    FAIL() << "label 2 accepted for a binary objective";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "clicks.csv:3: label 2 is not 0 or 1")) << e.what();
  }
  BoostedTreesOptions o = tree_options("multiclass");
  o.max_bins = 256;
  EXPECT_THROW((void)fit_boosted_trees(*rows, nullptr, o), ValueError);
  o = tree_options("poisson");
  EXPECT_THROW((void)fit_boosted_trees(*rows, nullptr, o), ValueError);
  o = tree_options("binary");
  o.early_stopping_rounds = 3;  // without rows to watch
  EXPECT_THROW((void)fit_boosted_trees(*rows, nullptr, o), ValueError);
}

TEST(BoostedTrees, ItsBytesReadBackAndBadOnesAreRefused) {
  auto rows = dataset_rows(mixed(13, 3), {});
  const BoostedTreesFit fit = fit_boosted_trees(*rows, nullptr, tree_options("multiclass"));
  std::ostringstream out;
  BinaryWriter w(out);
  fit.model.write(w);
  std::istringstream in(out.str());
  BinaryReader r(in, "model.ckpt");
  const BoostedTreesModel back = BoostedTreesModel::read(r);
  expect_same_trees(fit.model, back, "read back");
  std::istringstream cut(out.str().substr(0, out.str().size() - 8));
  BinaryReader short_reader(cut, "model.ckpt");
  EXPECT_THROW((void)BoostedTreesModel::read(short_reader), FormatError);
  // A child that points back at its parent would walk forever: refused.
  BoostedTreesModel loop = fit.model;
  loop.trees[0].nodes[1] = loop.trees[0].nodes[0];
  std::ostringstream bad;
  BinaryWriter bw(bad);
  loop.write(bw);
  std::istringstream bad_in(bad.str());
  BinaryReader bad_reader(bad_in, "model.ckpt");
  try {
    (void)BoostedTreesModel::read(bad_reader);
    FAIL() << "a looping tree accepted";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "model.ckpt: tree node 1")) << e.what();
  }
}

}  // namespace
}  // namespace tessera::estimators
