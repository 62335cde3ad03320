// [model] of the estimators (docs/ml.md): their keys, what to_toml writes back, the errors, and
// the example configs in examples/ml/.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tessera/core/error.h"
#include "tessera/train/config.h"

namespace tessera::train {
namespace estimator_config_test {

ConfigError error_of(const std::string& text) {
  try {
    (void)parse_config(text, "ml.toml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return ConfigError("", 0, "", "");
}

TEST(EstimatorConfig, KeysReadAndWriteBack) {
  const Config c = parse_config(
      "[model]\ntype = \"logistic_regression\"\nl2 = 0.5\nfit_intercept = false\n"
      "standardize = true\nmax_iter = 7\ntol = 1e-3\n",
      "ml.toml");
  EXPECT_TRUE(is_estimator(c.model.type));
  EXPECT_EQ(c.model.l2, 0.5);
  EXPECT_FALSE(c.model.fit_intercept);
  EXPECT_TRUE(c.model.standardize);
  EXPECT_EQ(c.model.max_iter, 7);
  EXPECT_EQ(c.model.tol, 1e-3);
  const Config back = parse_config(to_toml(c), "back.toml");
  EXPECT_EQ(back.model.type, "logistic_regression");
  EXPECT_EQ(back.model.l2, 0.5);
  EXPECT_FALSE(back.model.fit_intercept);
  EXPECT_TRUE(back.model.standardize);
  EXPECT_EQ(back.model.max_iter, 7);
  EXPECT_EQ(back.model.tol, 1e-3);
  EXPECT_FALSE(is_estimator("layers"));
  EXPECT_FALSE(is_estimator("logistic"));  // the parameter server's sparse model
}

TEST(EstimatorConfig, KMeansHasItsOwnKeysAndDefaults) {
  const Config c = parse_config("[model]\ntype = \"kmeans\"\nclusters = 12\n", "ml.toml");
  EXPECT_TRUE(is_estimator(c.model.type));
  EXPECT_EQ(c.model.clusters, 12);
  EXPECT_EQ(c.model.max_iter, 300);
  EXPECT_EQ(c.model.tol, 1e-4);
  const Config back = parse_config(to_toml(c), "back.toml");
  EXPECT_EQ(back.model.clusters, 12);
  EXPECT_EQ(back.model.max_iter, 300);
  EXPECT_EQ(back.model.tol, 1e-4);
  EXPECT_EQ(error_of("[model]\ntype = \"kmeans\"\nclusters = 0\n").key(), "model.clusters");
  // A linear model's keys are not k-means's.
  EXPECT_EQ(error_of("[model]\ntype = \"kmeans\"\nl2 = 1\n").key(), "model.l2");
}

TEST(EstimatorConfig, NaiveBayesKeysReadAndWriteBack) {
  const Config c = parse_config(
      "[model]\ntype = \"naive_bayes\"\ndistribution = \"bernoulli\"\nalpha = 0.5\n"
      "binarize = 0.25\n",
      "ml.toml");
  const Config back = parse_config(to_toml(c), "back.toml");
  EXPECT_EQ(back.model.distribution, "bernoulli");
  EXPECT_EQ(back.model.alpha, 0.5);
  EXPECT_EQ(back.model.binarize, 0.25);
  EXPECT_EQ(back.model.var_smoothing, 1e-9);
  EXPECT_EQ(error_of("[model]\ntype = \"naive_bayes\"\ndistribution = \"poisson\"\n").key(),
            "model.distribution");
  EXPECT_EQ(error_of("[model]\ntype = \"naive_bayes\"\nmax_iter = 3\n").key(), "model.max_iter");
}

TEST(EstimatorConfig, PcaKeysReadAndWriteBack) {
  const Config c = parse_config("[model]\ntype = \"pca\"\ncomponents = 3\n", "ml.toml");
  EXPECT_EQ(parse_config(to_toml(c), "back.toml").model.components, 3);
  EXPECT_EQ(parse_config("[model]\ntype = \"pca\"\n", "ml.toml").model.components, 10);
  EXPECT_EQ(error_of("[model]\ntype = \"pca\"\ncomponents = 0\n").key(), "model.components");
}

TEST(EstimatorConfig, AlsKeysTakeSparksDefaultsAndWriteBack) {
  const Config c = parse_config(
      "[model]\ntype = \"als\"\nimplicit = true\nalpha = 4\n"
      "[data]\ntrain = \"csv:r.csv\"\nlabel_column = \"rating\"\n"
      "stream = true\n",
      "ml.toml");
  EXPECT_TRUE(is_regression(c.model));
  const Config back = parse_config(to_toml(c), "back.toml");
  EXPECT_EQ(back.model.factors, 10);
  EXPECT_EQ(back.model.l2, 0.1);
  EXPECT_EQ(back.model.max_iter, 10);
  EXPECT_TRUE(back.model.implicit);
  EXPECT_EQ(back.model.alpha, 4.0);
  EXPECT_EQ(back.model.top_k, 10);
  EXPECT_TRUE(back.data.stream);
  EXPECT_EQ(error_of("[model]\ntype = \"als\"\nl2 = 0\n").key(), "model.l2");
  EXPECT_EQ(error_of("[model]\ntype = \"als\"\nclusters = 3\n").key(), "model.clusters");
  // A network reads a streamed file in order only.
  const ConfigError e = error_of(
      "[model]\nlayers = [{ type = \"linear\", out = 2 }]\n[data]\ntrain = \"csv:t.csv\"\n"
      "stream = true\n");
  EXPECT_EQ(e.key(), "data.stream");
}

TEST(EstimatorConfig, TreeKeysReadAndWriteBack) {
  const Config c = parse_config(
      "[model]\ntype = \"boosted_trees\"\nobjective = \"binary\"\nrounds = 40\n"
      "learning_rate = 0.1\nmax_depth = 4\ngrow_policy = \"lossguide\"\nmax_leaves = 16\n"
      "reg_alpha = 0.5\nsubsample = 0.7\nvalidation_fraction = 0.2\nearly_stopping_rounds = 5\n",
      "ml.toml");
  EXPECT_TRUE(is_estimator(c.model.type));
  const TreeConfig back = parse_config(to_toml(c), "back.toml").model.trees;
  EXPECT_EQ(back.objective, "binary");
  EXPECT_EQ(back.rounds, 40);
  EXPECT_EQ(back.learning_rate, 0.1);
  EXPECT_EQ(back.max_depth, 4);
  EXPECT_EQ(back.grow_policy, "lossguide");
  EXPECT_EQ(back.max_leaves, 16);
  EXPECT_EQ(back.reg_alpha, 0.5);
  EXPECT_EQ(back.reg_lambda, 1.0);
  EXPECT_EQ(back.subsample, 0.7);
  EXPECT_EQ(back.validation_fraction, 0.2);
  EXPECT_EQ(back.early_stopping_rounds, 5);
  // A forest's defaults are XGBRFClassifier's, and its keys are its own.
  const Config forest = parse_config("[model]\ntype = \"random_forest\"\ntrees = 7\n", "ml.toml");
  EXPECT_TRUE(is_regression(
      parse_config("[model]\ntype = \"random_forest\"\nobjective = \"regression\"\n", "ml.toml")
          .model));
  const TreeConfig f = parse_config(to_toml(forest), "back.toml").model.trees;
  EXPECT_EQ(f.trees, 7);
  EXPECT_EQ(f.rounds, 1);
  EXPECT_EQ(f.learning_rate, 1.0);
  EXPECT_EQ(f.subsample, 0.8);
  EXPECT_EQ(f.colsample_bynode, 0.8);
  EXPECT_EQ(f.reg_lambda, 1e-5);
  EXPECT_EQ(error_of("[model]\ntype = \"random_forest\"\nrounds = 3\n").key(), "model.rounds");
  EXPECT_EQ(error_of("[model]\ntype = \"boosted_trees\"\nmax_bins = 256\n").key(),
            "model.max_bins");
  EXPECT_EQ(error_of("[model]\ntype = \"boosted_trees\"\nobjective = \"poisson\"\n").key(),
            "model.objective");
  EXPECT_EQ(error_of("[model]\ntype = \"boosted_trees\"\nearly_stopping_rounds = 3\n").key(),
            "model.early_stopping_rounds");
  EXPECT_EQ(error_of("[model]\ntype = \"boosted_trees\"\nl2 = 1\n").key(), "model.l2");
}

TEST(EstimatorConfig, ANetworksKeysAndStrategiesAreErrorsNamingTheKey) {
  EXPECT_EQ(error_of("[model]\ntype = \"linear_svm\"\nlayers = []\n").key(), "model.layers");
  EXPECT_EQ(error_of("[model]\ntype = \"linear_svm\"\nfactors = 4\n").key(), "model.factors");
  EXPECT_EQ(error_of("[model]\ntype = \"linear_svm\"\nl2 = -1\n").key(), "model.l2");
  EXPECT_EQ(error_of("[model]\ntype = \"linear_regression\"\nl1 = -1\n").key(), "model.l1");
  EXPECT_EQ(parse_config(to_toml(parse_config("[model]\ntype = \"linear_regression\"\nl1 = 0.25\n",
                                              "ml.toml")),
                         "back.toml")
                .model.l1,
            0.25);
  EXPECT_EQ(error_of("[model]\ntype = \"linear_svm\"\ntol = 0\n").key(), "model.tol");
  const ConfigError e =
      error_of("[model]\ntype = \"linear_regression\"\n[parallel]\nstrategy = \"ddp\"\n");
  EXPECT_EQ(e.key(), "parallel.strategy");
  EXPECT_NE(std::string(e.what()).find("leave it out"), std::string::npos) << e.what();
}

TEST(EstimatorConfig, TheExamplesParse) {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(TESSERA_SOURCE_DIR) / "examples/ml")) {
    if (entry.path().extension() != ".toml") continue;
    ++found;
    const Config c = load_config(entry.path().string());
    EXPECT_TRUE(is_estimator(c.model.type)) << entry.path();
  }
  EXPECT_GE(found, 3);
}

}  // namespace estimator_config_test
}  // namespace tessera::train
