// `tessera train` on the estimators of docs/ml.md, as a user runs it: one process against 2 and
// 4 (real processes under the launcher) on the same rows, and the errors bad tables get.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

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
    std::vector<std::string> args{"train", cfg.string()};
    if (nproc > 1) args.insert(args.end(), {"--nproc", std::to_string(nproc)});
    Finished done = run_tessera(args, dir_ / log, 120s);
    err_ = std::move(done.err);
    out_ = std::move(done.out);
    return done.code;
  }

  // Runs `tessera ARGS...` (eval, predict); returns its exit code.
  int run(const std::vector<std::string>& args, const std::string& log) {
    Finished done = run_tessera(args, dir_ / log, 60s);
    err_ = std::move(done.err);
    out_ = std::move(done.out);
    return done.code;
  }

  // A CSV file's columns: its header's names, then each line's fields as text.
  static std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
    std::vector<std::vector<std::string>> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> fields;
      std::stringstream fields_in(line);
      for (std::string f; std::getline(fields_in, f, ',');) fields.push_back(f);
      lines.push_back(std::move(fields));
    }
    return lines;
  }

  // `tessera predict` of the run's model on a CSV file, into predictions<N>.csv: the file's text
  // (empty, with a test failure, when predict fails).
  std::string predict_run_model(const fs::path& csv, int n) {
    const fs::path out = dir_ / ("predictions" + std::to_string(n) + ".csv");
    const int code = run({"predict", (dir_ / "run" / "model.ckpt").string(), "--data",
                          "csv:" + csv.string(), "--out", out.string()},
                         "predict");
    EXPECT_EQ(code, 0) << err_;
    return code == 0 ? read_file(out) : std::string();
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
    // 4 processes for one model: LinearModel.SeveralProcessesFitOneProcessesModel runs each loss
    // on 2 and 4 ranks.
    for (int nproc : classes == 3 ? std::vector<int>{2, 4} : std::vector<int>{2}) {
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

// The model train saves scores as train scored it (eval), and predicts each row's class with its
// probabilities, from a table with or without the label column (predict).
TEST_F(Estimators, TheSavedModelEvaluatesAndPredictsAsTrainingScoredIt) {
  const fs::path test_csv = table("test.csv", 500, 3, 2);
  ASSERT_EQ(
      train(config("logistic_regression", table("train.csv", 3000, 3, 1), test_csv), 2, "train"), 0)
      << err_;
  const fs::path model = dir_ / "run" / "model.ckpt";
  EXPECT_NE(out_.find("model saved to " + model.string()), std::string::npos) << out_;
  const double accuracy = result()["test_accuracy"];
  ASSERT_EQ(run({"eval", model.string(), "--data", "csv:" + test_csv.string()}, "eval"), 0) << err_;
  char expected[64];
  std::snprintf(expected, sizeof expected, "logistic_regression: accuracy %.2f%%", 100 * accuracy);
  EXPECT_NE(out_.find(expected), std::string::npos) << out_;

  const fs::path out = dir_ / "predictions.csv";
  ASSERT_EQ(
      run({"predict", model.string(), "--data", "csv:" + test_csv.string(), "--out", out.string()},
          "predict"),
      0)
      << err_;
  const auto predicted = read_csv(out);
  const auto truth = read_csv(test_csv);
  ASSERT_EQ(predicted.size(), 501u);
  EXPECT_EQ(predicted[0], (std::vector<std::string>{"prediction", "p_0", "p_1", "p_2"}));
  int right = 0;
  for (size_t i = 1; i < predicted.size(); ++i) {
    ASSERT_EQ(predicted[i].size(), 4u) << i;
    double total = 0;
    int best = 0;
    for (int c = 0; c < 3; ++c) {
      const double p = std::stod(predicted[i][1 + c]);
      total += p;
      if (p > std::stod(predicted[i][1 + best])) best = c;
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << "row " << i;
    EXPECT_EQ(predicted[i][0], std::to_string(best)) << "row " << i;
    right += predicted[i][0] == truth[i].back();
  }
  EXPECT_DOUBLE_EQ(right / 500.0, accuracy);

  // The same rows without their label column: the same predictions.
  std::ofstream features(dir_ / "features.csv");
  for (const auto& line : truth) {
    for (size_t j = 0; j + 1 < line.size(); ++j) features << (j ? "," : "") << line[j];
    features << "\n";
  }
  features.close();
  const fs::path again = dir_ / "again.csv";
  ASSERT_EQ(run({"predict", model.string(), "--data", "csv:" + (dir_ / "features.csv").string(),
                 "--out", again.string()},
                "again"),
            0)
      << err_;
  EXPECT_EQ(read_csv(again), predicted);
}

TEST_F(Estimators, ARegressionPredictsValuesWithTheRmseTrainingMeasured) {
  const fs::path test_csv = table("test.csv", 400, 0, 2);
  ASSERT_EQ(
      train(config("linear_regression", table("train.csv", 2000, 0, 1), test_csv), 1, "train"), 0)
      << err_;
  const fs::path out = dir_ / "predictions.csv";
  ASSERT_EQ(run({"predict", (dir_ / "run" / "model.ckpt").string(), "--data",
                 "csv:" + test_csv.string(), "--out", out.string()},
                "predict"),
            0)
      << err_;
  const auto predicted = read_csv(out);
  const auto truth = read_csv(test_csv);
  ASSERT_EQ(predicted.size(), 401u);
  EXPECT_EQ(predicted[0], std::vector<std::string>{"prediction"});
  double squares = 0;
  for (size_t i = 1; i < predicted.size(); ++i) {
    const double e = std::stod(predicted[i][0]) - std::stod(truth[i].back());
    squares += e * e;
  }
  EXPECT_NEAR(std::sqrt(squares / 400), result()["test_rmse"].get<double>(), 1e-5);
}

TEST_F(Estimators, DataOfOtherFeaturesThanTheSavedModelIsAnErrorNamingIt) {
  const fs::path train_csv = table("train.csv", 200, 2, 1);
  ASSERT_EQ(train(config("logistic_regression", train_csv, train_csv), 1, "train"), 0) << err_;
  std::ofstream(dir_ / "narrow.csv") << "x1,x2,y\n1,2,0\n3,4,1\n";
  const std::string model = (dir_ / "run" / "model.ckpt").string();
  const std::string narrow = "csv:" + (dir_ / "narrow.csv").string();
  EXPECT_EQ(run({"eval", model, "--data", narrow}, "eval"), 2);
  EXPECT_NE(err_.find("--data"), std::string::npos) << err_;
  EXPECT_NE(err_.find("has samples of shape [2], the model takes [6]"), std::string::npos) << err_;
  const fs::path out = dir_ / "predictions.csv";
  std::ofstream(out) << "kept\n";
  EXPECT_EQ(run({"predict", model, "--data", narrow, "--out", out.string()}, "predict"), 2);
  EXPECT_EQ(read_csv(out), std::vector<std::vector<std::string>>{{"kept"}}) << "left as it was";
}

// k-means from the same seed: the same centers on 1, 2 and 4 processes; the saved model assigns
// rows to clusters (predict) and scores them as training did (eval). Its table needs no labels.
TEST_F(Estimators, KMeansOnSeveralProcessesFindsOneProcessesClusters) {
  const fs::path test_csv = table("test.csv", 400, 3, 2);
  std::ofstream(dir_ / "km.toml")
      << "[model]\ntype = \"kmeans\"\nclusters = 4\n[data]\ntrain = \"csv:"
      << table("train.csv", 2000, 3, 1).string() << "\"\ntest = \"csv:" << test_csv.string()
      << "\"\nlabel_column = \"y\"\n[train]\nseed = 3\nrun_dir = \"" << (dir_ / "run").string()
      << "\"\n";
  ASSERT_EQ(train(dir_ / "km.toml", 1, "one"), 0) << err_;
  const nlohmann::json one = result();
  ASSERT_TRUE(one.value("converged", false)) << one.dump();
  for (int nproc : {2, 4}) {
    ASSERT_EQ(train(dir_ / "km.toml", nproc, "many" + std::to_string(nproc)), 0) << err_;
    const nlohmann::json many = result();
    EXPECT_EQ(many["iterations"], one["iterations"]) << nproc << " processes";
    const double a = one["train_inertia"];
    EXPECT_NEAR(many["train_inertia"].get<double>(), a, 1e-6 * a) << nproc << " processes";
  }
  const std::string model = (dir_ / "run" / "model.ckpt").string();
  ASSERT_EQ(run({"eval", model, "--data", "csv:" + test_csv.string()}, "eval"), 0) << err_;
  char expected[64];
  std::snprintf(expected, sizeof expected, "kmeans: inertia %.8g",
                result()["test_inertia"].get<double>());
  EXPECT_NE(out_.find(expected), std::string::npos) << out_;
  const fs::path out = dir_ / "clusters.csv";
  ASSERT_EQ(run({"predict", model, "--data", "csv:" + test_csv.string(), "--out", out.string()},
                "predict"),
            0)
      << err_;
  const auto clusters = read_csv(out);
  ASSERT_EQ(clusters.size(), 401u);
  EXPECT_EQ(clusters[0], std::vector<std::string>{"prediction"});
  std::set<std::string> seen;
  for (size_t i = 1; i < clusters.size(); ++i) seen.insert(clusters[i].at(0));
  EXPECT_EQ(seen, (std::set<std::string>{"0", "1", "2", "3"}));
}

TEST_F(Estimators, NaiveBayesOnTwoProcessesIsOneProcesses) {
  const fs::path test_csv = table("test.csv", 300, 3, 2);
  std::ofstream(dir_ / "nb.toml") << "[model]\ntype = \"naive_bayes\"\n[data]\ntrain = \"csv:"
                                  << table("train.csv", 1500, 3, 1).string()
                                  << "\"\ntest = \"csv:" << test_csv.string()
                                  << "\"\nlabel_column = \"y\"\n[train]\nrun_dir = \""
                                  << (dir_ / "run").string() << "\"\n";
  ASSERT_EQ(train(dir_ / "nb.toml", 1, "one"), 0) << err_;
  EXPECT_NE(out_.find("naive_bayes: 1500 rows, one pass in"), std::string::npos) << out_;
  const nlohmann::json one = result();
  ASSERT_EQ(train(dir_ / "nb.toml", 2, "two"), 0) << err_;
  const nlohmann::json two = result();
  EXPECT_EQ(two["test_accuracy"], one["test_accuracy"]);
  EXPECT_NEAR(two["test_log_loss"].get<double>(), one["test_log_loss"].get<double>(), 1e-9);
  EXPECT_GT(one["test_accuracy"].get<double>(), 0.5);
  const fs::path out = dir_ / "predictions.csv";
  ASSERT_EQ(run({"predict", (dir_ / "run" / "model.ckpt").string(), "--data",
                 "csv:" + test_csv.string(), "--out", out.string()},
                "predict"),
            0)
      << err_;
  const auto predicted = read_csv(out);
  ASSERT_EQ(predicted.size(), 301u);
  EXPECT_EQ(predicted[0], (std::vector<std::string>{"prediction", "p_0", "p_1", "p_2"}));
}

// Boosted trees and forests grow the same trees on any number of processes: their predictions
// are the same bytes, for classes and for values.
TEST_F(Estimators, TreesOnTwoProcessesPredictWhatOneProcessPredicts) {
  for (const auto& [type, objective, classes] :
       std::vector<std::tuple<std::string, std::string, int>>{{"boosted_trees", "multiclass", 3},
                                                              {"boosted_trees", "regression", 0},
                                                              {"random_forest", "multiclass", 3}}) {
    const fs::path test_csv = table("test.csv", 300, classes, 2);
    const bool forest = type == "random_forest";
    std::ofstream(dir_ / "bt.toml")
        << "[model]\ntype = \"" << type << "\"\nobjective = \"" << objective << "\"\n"
        << (forest ? "trees = 10\n" : "rounds = 10\n") << "max_depth = 4\n"
        << "[data]\ntrain = \"csv:" << table("train.csv", 1500, classes, 1).string()
        << "\"\ntest = \"csv:" << test_csv.string()
        << "\"\nlabel_column = \"y\"\n[train]\nrun_dir = \"" << (dir_ / "run").string() << "\"\n";
    std::vector<std::string> predictions;
    nlohmann::json first;
    for (int nproc : {1, 2}) {
      ASSERT_EQ(train(dir_ / "bt.toml", nproc, "train" + std::to_string(nproc)), 0) << err_;
      const std::string line =
          type + ": 1500 rows, " + (forest ? "10 trees a class grown in" : "10 iterations in");
      EXPECT_NE(out_.find(line), std::string::npos) << out_;
      const nlohmann::json r = result();
      const char* score = classes == 0 ? "test_rmse" : "test_accuracy";
      if (nproc == 1) first = r;
      // The same model; its score is summed over the processes in another order.
      EXPECT_NEAR(r[score].get<double>(), first[score].get<double>(), 1e-12)
          << objective << " on " << nproc << " processes";
      predictions.push_back(predict_run_model(test_csv, nproc));
    }
    EXPECT_EQ(predictions[0], predictions[1]) << objective;
    EXPECT_EQ(read_csv(dir_ / "predictions1.csv").size(), 301U);
    if (classes == 0) {
      EXPECT_LT(first["test_rmse"].get<double>(), 1.0) << "the noise is 0.5";
    } else {
      EXPECT_GT(first["test_accuracy"].get<double>(), 0.6);
    }
  }
}

// Ratings user,item,rating of 210 users x 40 items, each pair with probability 0.3: a rank-2
// model plus noise of deviation 0.3, or (implicit) an interaction where that is above 0.5. A
// fifth of them, and all of users 200 to 209, go to test.csv; the rest to train.csv.
void write_ratings(const fs::path& dir, bool implicit) {
  std::mt19937 gen(1);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<double> u(420);
  std::vector<double> v(80);
  for (double& x : u) x = normal(gen);
  for (double& x : v) x = normal(gen);
  std::ofstream train(dir / "train.csv");
  std::ofstream test(dir / "test.csv");
  train << "user,item,rating\n";
  test << "user,item,rating\n";
  for (int a = 0; a < 210; ++a) {
    for (int b = 0; b < 40; ++b) {
      const double r = u[2 * a] * v[2 * b] + u[2 * a + 1] * v[2 * b + 1] + 0.3 * normal(gen);
      if (uniform(gen) < 0.3 && (!implicit || r > 0.5)) {
        (a >= 200 || uniform(gen) < 0.2 ? test : train)
            << a << "," << b << "," << (implicit ? 1.0 : r) << "\n";
      }
    }
  }
}

// ALS's users and items split over 2 and 4 processes: the same factors (so the same predictions
// and scores); a user or an item training never saw is predicted "nan".
TEST_F(Estimators, AlsOnTwoAndFourProcessesPredictsWhatOneProcessPredicts) {
  for (bool implicit : {false, true}) {
    write_ratings(dir_, implicit);
    const fs::path train_csv = dir_ / "train.csv";
    const fs::path test_csv = dir_ / "test.csv";
    std::ofstream(dir_ / "als.toml")
        << "[model]\ntype = \"als\"\nfactors = 2\nl2 = 0.01\ntop_k = 3\nimplicit = "
        << (implicit ? "true" : "false") << "\n[data]\ntrain = \"csv:" << train_csv.string()
        << "\"\ntest = \"csv:" << test_csv.string()
        << "\"\nlabel_column = \"rating\"\n[train]\nrun_dir = \"" << (dir_ / "run").string()
        << "\"\n";
    const char* score = implicit ? "test_precision_at_k" : "test_rmse";
    std::vector<std::string> predictions;
    nlohmann::json first;
    for (int nproc : {1, 2, 4}) {
      ASSERT_EQ(train(dir_ / "als.toml", nproc, "train" + std::to_string(nproc)), 0) << err_;
      EXPECT_NE(out_.find("als: "), std::string::npos) << out_;
      const nlohmann::json r = result();
      ASSERT_TRUE(r.contains(score)) << r.dump();
      if (nproc == 1) first = r;
      EXPECT_NEAR(r[score].get<double>(), first[score].get<double>(), 1e-12)
          << nproc << " processes";
      predictions.push_back(predict_run_model(test_csv, nproc));
    }
    EXPECT_EQ(predictions[0], predictions[1]);
    EXPECT_EQ(predictions[0], predictions[2]);
    // Users 200 to 209 are not in training.
    const auto lines = read_csv(dir_ / "predictions1.csv");
    ASSERT_GT(lines.size(), 2U);
    EXPECT_EQ(lines.back().back(), "nan") << "the last rows are of users training never saw";
    if (implicit) {
      // About one held-out item a user among some 35 it did not rate: chance is about 0.03.
      EXPECT_GT(first[score].get<double>(), 0.07);
    } else {
      EXPECT_LT(first[score].get<double>(), 0.4) << "the noise is 0.3";
    }
  }
}

// data.stream reads the file a block at a time each pass; the rows, and so the models, are the
// loaded file's: a classifier, and a regression whose target is a column taken out of each row.
TEST_F(Estimators, AStreamedFileFitsTheLoadedFilesModel) {
  for (const auto& [type, classes, score] : std::vector<std::tuple<std::string, int, std::string>>{
           {"logistic_regression", 3, "test_accuracy"}, {"linear_regression", 0, "test_rmse"}}) {
    const fs::path cfg =
        config(type, table("train.csv", 9000, classes, 1), table("test.csv", 500, classes, 2));
    // One process reads its rows on two threads, a reader each; two processes on one each.
    for (const char* nproc : {"1", "2"}) {
      ASSERT_EQ(run({"train", cfg.string(), "--nproc", nproc}, "loaded"), 0) << err_;
      const nlohmann::json loaded = result();
      ASSERT_EQ(
          run({"train", cfg.string(), "--nproc", nproc, "--set", "data.stream=true"}, "streamed"),
          0)
          << err_;
      const nlohmann::json streamed = result();
      EXPECT_EQ(streamed["objective"], loaded["objective"]) << type << " on " << nproc;
      EXPECT_EQ(streamed[score], loaded[score]) << type << " on " << nproc;
      EXPECT_EQ(streamed["iterations"], loaded["iterations"]) << type << " on " << nproc;
    }
  }
}

// LIBSVM files stream too (labels -1/+1, sparse rows): the same model as the files loaded.
TEST_F(Estimators, AStreamedLibsvmFileFitsTheLoadedFilesModel) {
  const auto svm = [&](const std::string& name, int rows, uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    std::ofstream out(dir_ / name);
    for (int r = 0; r < rows; ++r) {
      float score = 0.0F;
      std::string pairs;
      for (int f = 1; f <= 6; ++f) {
        if ((r + f) % 3 == 0) continue;  // absent: 0
        const float v = normal(gen);
        score += v * static_cast<float>(f % 3) - 0.5F * v;
        pairs += " " + std::to_string(f) + ":" + std::to_string(v);
      }
      out << (score + 0.5F * normal(gen) > 0 ? "+1" : "-1") << pairs << "\n";
    }
    return dir_ / name;
  };
  const fs::path train_svm = svm("train.svm", 6000, 1);
  const fs::path test_svm = svm("test.svm", 400, 2);
  std::ofstream(dir_ / "svm.toml")
      << "[model]\ntype = \"logistic_regression\"\nl2 = 1e-3\ntol = 1e-9\n"
      << "[data]\ntrain = \"libsvm:" << train_svm.string()
      << "\"\ntest = \"libsvm:" << test_svm.string() << "\"\n[train]\nrun_dir = \""
      << (dir_ / "run").string() << "\"\n";
  const std::string cfg = (dir_ / "svm.toml").string();
  ASSERT_EQ(run({"train", cfg, "--nproc", "2"}, "loaded"), 0) << err_;
  const nlohmann::json loaded = result();
  ASSERT_EQ(run({"train", cfg, "--nproc", "2", "--set", "data.stream=true"}, "streamed"), 0)
      << err_;
  const nlohmann::json streamed = result();
  EXPECT_EQ(streamed["objective"], loaded["objective"]);
  EXPECT_EQ(streamed["test_accuracy"], loaded["test_accuracy"]);
  EXPECT_GT(loaded["test_accuracy"].get<double>(), 0.7);
}

// PCA on 2 processes keeps one process's share of the variance; predict writes coordinates.
TEST_F(Estimators, PcaOnTwoProcessesIsOneProcesses) {
  const fs::path test_csv = table("test.csv", 200, 2, 2);
  std::ofstream(dir_ / "pca.toml")
      << "[model]\ntype = \"pca\"\ncomponents = 3\n[data]\ntrain = \"csv:"
      << table("train.csv", 1000, 2, 1).string() << "\"\ntest = \"csv:" << test_csv.string()
      << "\"\nlabel_column = \"y\"\n[train]\nrun_dir = \"" << (dir_ / "run").string() << "\"\n";
  ASSERT_EQ(train(dir_ / "pca.toml", 1, "one"), 0) << err_;
  const double one = result()["test_explained_variance"];
  ASSERT_EQ(train(dir_ / "pca.toml", 2, "two"), 0) << err_;
  EXPECT_NEAR(result()["test_explained_variance"].get<double>(), one, 1e-6);
  EXPECT_GT(one, 0.5) << "3 of 6 correlated features";
  const fs::path out = dir_ / "coordinates.csv";
  ASSERT_EQ(run({"predict", (dir_ / "run" / "model.ckpt").string(), "--data",
                 "csv:" + test_csv.string(), "--out", out.string()},
                "predict"),
            0)
      << err_;
  const auto coordinates = read_csv(out);
  ASSERT_EQ(coordinates.size(), 201u);
  EXPECT_EQ(coordinates[0], (std::vector<std::string>{"pc_1", "pc_2", "pc_3"}));
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
