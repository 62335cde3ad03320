#include "tessera/train/config.h"

#include <gtest/gtest.h>

#include "tessera/core/error.h"

namespace tessera::train {
namespace {

const char* kMinimal = R"(
[model]
layers = [{ type = "linear", out = 3 }]
)";

// Parses text and returns the ConfigError it raises (fails the test when none).
ConfigError error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    (void)parse_config(text, "cfg.toml", overrides);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return ConfigError("", 0, "", "");
}

TEST(Config, DefaultsFillEverythingNotGiven) {
  Config c = parse_config(kMinimal, "dir/my_run.toml");
  EXPECT_EQ(c.model.layers.size(), 1u);
  EXPECT_EQ(c.model.layers[0].type, "linear");
  EXPECT_EQ(c.model.layers[0].params.at("out").value, 3);
  EXPECT_EQ(c.data.train, "fashion-mnist:train");
  EXPECT_EQ(c.optimizer.name, "sgd");
  EXPECT_EQ(c.train.run_dir, "runs/my_run");
  EXPECT_EQ(c.parallel.strategy, "auto");
  EXPECT_FALSE(c.parallel.sync_batchnorm);
}

TEST(Config, TheDefaultTestSetGoesOnlyWithTheDefaultTrainingSet) {
  EXPECT_EQ(parse_config(kMinimal, "cfg.toml").data.test, "fashion-mnist:test");
  const std::string libsvm = std::string(kMinimal) + "[data]\ntrain = \"libsvm:a.svm\"\n";
  EXPECT_EQ(parse_config(libsvm, "cfg.toml").data.test, "");
  EXPECT_EQ(parse_config(libsvm + "test = \"libsvm:b.svm\"\n", "cfg.toml").data.test,
            "libsvm:b.svm");
  EXPECT_EQ(parse_config(kMinimal, "cfg.toml", {"data.train=\"csv:a.csv\""}).data.test, "");
}

TEST(Config, UnknownKeyNamesKeyLineAndSuggestion) {
  ConfigError e =
      error_of(std::string(kMinimal) + "[optimizer]\nname = \"sgd\"\nlearning_rate = 0.1\n");
  EXPECT_EQ(e.key(), "optimizer.learning_rate");
  EXPECT_EQ(e.line(), 6);
  EXPECT_NE(std::string(e.what()).find("cfg.toml:6"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("unknown key"), std::string::npos) << e.what();
}

TEST(Config, MisspeltKeyGetsDidYouMean) {
  ConfigError e = error_of(std::string(kMinimal) + "[train]\nepochz = 3\n");
  EXPECT_NE(std::string(e.what()).find("did you mean 'epochs'"), std::string::npos) << e.what();
}

TEST(Config, WrongTypeNamesKeyAndLine) {
  ConfigError e = error_of(std::string(kMinimal) + "[train]\nepochs = \"ten\"\n");
  EXPECT_EQ(e.key(), "train.epochs");
  EXPECT_EQ(e.line(), 5);
  EXPECT_NE(std::string(e.what()).find("expected an integer"), std::string::npos) << e.what();
}

TEST(Config, BadValueNamesAllowedChoices) {
  ConfigError e = error_of(std::string(kMinimal) + "[optimizer]\nname = \"rmsprop\"\n");
  EXPECT_EQ(e.key(), "optimizer.name");
  EXPECT_NE(std::string(e.what()).find("sgd, adam, adamw, adagrad"), std::string::npos) << e.what();
}

TEST(Config, UnknownTableIsAnError) {
  ConfigError e = error_of(std::string(kMinimal) + "[optimiser]\nlr = 0.1\n");
  EXPECT_EQ(e.key(), "optimiser");
  EXPECT_NE(std::string(e.what()).find("did you mean 'optimizer'"), std::string::npos) << e.what();
}

TEST(Config, SyntaxErrorNamesLine) {
  ConfigError e = error_of(std::string(kMinimal) + "[train]\nepochs = = 3\n");
  EXPECT_EQ(e.line(), 5);
}

TEST(Config, MissingModelIsAnError) {
  ConfigError e = error_of("[train]\nepochs = 3\n");
  EXPECT_EQ(e.key(), "model");
}

TEST(Config, OverridesApplyWithTomlValues) {
  Config c = parse_config(
      kMinimal, "cfg.toml",
      {"optimizer.lr=0.05", "train.epochs=2", "data.train=csv:x.csv", "data.test=\"\""});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.05);
  EXPECT_EQ(c.train.epochs, 2);
  EXPECT_EQ(c.data.train, "csv:x.csv");
  EXPECT_EQ(c.data.test, "");
}

TEST(Config, OverrideWithWrongTypeOrUnknownKeyFails) {
  EXPECT_EQ(error_of(kMinimal, {"train.epochs=abc"}).key(), "train.epochs");
  EXPECT_EQ(error_of(kMinimal, {"train.epoch=3"}).key(), "train.epoch");
  EXPECT_EQ(error_of(kMinimal, {"noequals"}).file(), "--set");
}

TEST(Config, ToTomlEscapesControlCharactersSoThatItReadsBack) {
  Config c = parse_config(std::string(kMinimal) + "[data]\ntrain = \"csv:a\\u0001\\tb\\\"c\"\n",
                          "cfg.toml");
  ASSERT_EQ(c.data.train, "csv:a\x01\tb\"c");
  EXPECT_EQ(parse_config(to_toml(c), "shown.toml").data.train, c.data.train);
}

TEST(Config, ToTomlRoundTrips) {
  Config c = parse_config(std::string(kMinimal) +
                              "[optimizer]\nlr = 0.125\nnesterov = true\nmomentum = 0.9\n" +
                              "[parallel]\nsync_batchnorm = true\n",
                          "cfg.toml");
  Config back = parse_config(to_toml(c), "shown.toml");
  EXPECT_EQ(to_toml(back), to_toml(c));
  EXPECT_DOUBLE_EQ(back.optimizer.lr, 0.125);
  EXPECT_TRUE(back.optimizer.nesterov);
  EXPECT_TRUE(back.parallel.sync_batchnorm);
  EXPECT_EQ(back.train.run_dir, "runs/cfg");
}

}  // namespace
}  // namespace tessera::train
