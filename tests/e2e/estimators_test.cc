// `tessera train` on the estimators of docs/ml.md, as a user runs it: one process against 2 and
// 4 (real processes under the launcher) on the same rows, and the errors bad tables get.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

class Estimators : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_e2e_estimators_" + std::to_string(::getpid()) + "_" + test_name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // n rows of 6 features and a target "y" from a known linear model: a value with noise, or one
  // of `classes` classes (the largest margin after Gumbel noise). Columns have their own scales.
  fs::path table(const std::string& name, int n, int classes, unsigned seed) const {
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uniform(1e-12, 1.0);
    std::ofstream out(dir_ / name);
    out << "x1,x2,x3,x4,x5,x6,y\n";
    for (int i = 0; i < n; ++i) {
      double m[3] = {0.3, 0, 0};
      for (int j = 0; j < 6; ++j) {
        const double x = (1 + j) * normal(gen) + j;
        out << x << ",";
        for (int k = 0; k < 3; ++k) m[k] += x * std::sin(1.0 + j + 7 * k) / (1 + j);
      }
      if (classes == 0) {
        out << m[0] + 0.5 * normal(gen) << "\n";
        continue;
      }
      int label = 0;
      double top = -1e300;
      for (int k = 0; k < classes; ++k) {
        const double v = m[k] - std::log(-std::log(uniform(gen)));
        if (v > top) top = v, label = k;
      }
      out << label << "\n";
    }
    return dir_ / name;
  }

  fs::path config(const std::string& type, const fs::path& train, const fs::path& test) const {
    std::ofstream out(dir_ / "cfg.toml");
    out << "[model]\ntype = \"" << type << "\"\nl2 = 1e-3\nstandardize = true\ntol = 1e-9\n"
        << "[data]\ntrain = \"csv:" << train.string() << "\"\ntest = \"csv:" << test.string()
        << "\"\nlabel_column = \"y\"\n[train]\nrun_dir = \"" << (dir_ / "run").string() << "\"\n";
    return dir_ / "cfg.toml";
  }

  // Runs `tessera train CONFIG [--nproc N]`; returns its exit code.
  int train(const fs::path& cfg, int nproc, const std::string& log) {
    std::vector<std::string> args{tessera_binary(), "train", cfg.string()};
    if (nproc > 1) args.insert(args.end(), {"--nproc", std::to_string(nproc)});
    Process process(args, {}, dir_ / log);
    const auto code = process.wait(120s);
    EXPECT_TRUE(code.has_value()) << "tessera train did not finish";
    err_ = process.err();
    out_ = process.out();
    return code.value_or(-1);
  }

  // The last line of the run's metrics: the fitted model's.
  [[nodiscard]] nlohmann::json result() const {
    std::ifstream in(dir_ / "run" / "metrics.jsonl");
    std::string line;
    std::string last;
    while (std::getline(in, line)) last = line;
    return last.empty() ? nlohmann::json{} : nlohmann::json::parse(last);
  }

  fs::path dir_;
  std::string err_;
  std::string out_;
};

TEST_F(Estimators, TwoAndFourProcessesFitOneProcessesModel) {
  for (const auto& [type, classes] : std::vector<std::pair<std::string, int>>{
           {"logistic_regression", 3}, {"linear_regression", 0}, {"linear_svm", 2}}) {
    const fs::path cfg =
        config(type, table("train.csv", 3000, classes, 1), table("test.csv", 500, classes, 2));
    ASSERT_EQ(train(cfg, 1, "one"), 0) << err_;
    const nlohmann::json one = result();
    ASSERT_TRUE(one.value("converged", false)) << type << ": " << one.dump() << "\n" << err_;
    EXPECT_NE(out_.find(type + ": 3000 rows"), std::string::npos) << out_;
    for (int nproc : {2, 4}) {
      ASSERT_EQ(train(cfg, nproc, "many" + std::to_string(nproc)), 0) << err_;
      const nlohmann::json many = result();
      const double a = one["objective"];
      const double b = many["objective"];
      EXPECT_NEAR(b, a, 1e-6 * std::abs(a)) << type << " on " << nproc << " processes";
      const char* score = classes == 0 ? "test_rmse" : "test_accuracy";
      EXPECT_NEAR(many[score].get<double>(), one[score].get<double>(), 1e-4) << type;
    }
    if (classes == 0) {
      EXPECT_LT(one["test_rmse"].get<double>(), 0.55) << "the noise is 0.5";
    } else {
      EXPECT_GT(one["test_accuracy"].get<double>(), 0.6) << type;
    }
  }
}

TEST_F(Estimators, ATestTableOfOtherColumnsIsAnErrorNamingBoth) {
  const fs::path train_csv = table("train.csv", 200, 2, 1);
  std::ofstream(dir_ / "test.csv") << "x1,x2,y\n1,2,0\n3,4,1\n";
  // A configuration error: exit code 2.
  EXPECT_EQ(train(config("logistic_regression", train_csv, dir_ / "test.csv"), 1, "bad"), 2);
  EXPECT_NE(err_.find("data.test"), std::string::npos) << err_;
  EXPECT_NE(err_.find("2 features where"), std::string::npos) << err_;
}

TEST_F(Estimators, ALabelThatIsNoClassNamesItsLine) {
  std::ofstream(dir_ / "train.csv") << "x1,y\n1,0\n2,1\n3,0.5\n4,1\n";
  EXPECT_EQ(train(config("logistic_regression", dir_ / "train.csv", dir_ / "train.csv"), 1, "bad"),
            1);
  EXPECT_NE(err_.find("train.csv:4"), std::string::npos) << err_;
  EXPECT_NE(err_.find("expected an integer class label, got '0.5'"), std::string::npos) << err_;
}

TEST_F(Estimators, MoreProcessesThanRowsIsAnErrorNamingTheRank) {
  std::ofstream(dir_ / "train.csv") << "x1,y\n1,0\n2,1\n3,0\n";
  EXPECT_EQ(train(config("logistic_regression", dir_ / "train.csv", dir_ / "train.csv"), 4, "bad"),
            1);
  EXPECT_NE(err_.find("holds no rows"), std::string::npos) << err_;
}

}  // namespace
}  // namespace tessera::e2e
