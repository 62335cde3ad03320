// `tessera predict` on a network's checkpoint: each sample's class and probabilities, from a CSV
// file with or without its label column, and the file left as it was when the data do not fit.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

class Predict : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_e2e_predict_" + std::to_string(::getpid()) + "_" + test_name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  int run(const std::vector<std::string>& args, const std::string& log) {
    Finished done = run_tessera(args, dir_ / log, 60s);
    err_ = std::move(done.err);
    return done.code;
  }
  [[nodiscard]] std::string read(const fs::path& path) const {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  fs::path dir_;
  std::string err_;
};

TEST_F(Predict, ANetworkPredictsEachSamplesClassWithOrWithoutTheLabelColumn) {
  const fs::path train = write("train.csv", "a,b,label\n0,1,0\n1,0,1\n0,2,0\n2,0,1\n");
  const fs::path cfg = write(
      "cfg.toml", "[model]\nlayers = [ { type = \"linear\", out = 2 } ]\n[data]\ntrain = \"csv:" +
                      train.string() +
                      "\"\ntest = \"\"\nbatch_size = 2\n[optimizer]\nname = \"adam\"\nlr = 0.1\n"
                      "[train]\nepochs = 20\nrun_dir = \"" +
                      (dir_ / "run").string() + "\"\n");
  ASSERT_EQ(run({"train", cfg.string()}, "train"), 0) << err_;
  const std::string checkpoint = (dir_ / "run" / "checkpoints" / "step-0000000040.ckpt").string();
  ASSERT_TRUE(fs::exists(checkpoint));
  const fs::path out = dir_ / "predictions.csv";
  ASSERT_EQ(run({"predict", checkpoint, "--data", "csv:" + train.string(), "--out", out.string()},
                "predict"),
            0)
      << err_;
  std::istringstream lines(read(out));
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "prediction,p_0,p_1");
  int rows = 0;
  const char* expected[] = {"0", "1", "0", "1"};  // the training labels, which it has learnt
  while (std::getline(lines, line)) {
    ASSERT_LT(rows, 4) << line;
    std::istringstream fields(line);
    std::string predicted, p0, p1;
    std::getline(fields, predicted, ',');
    std::getline(fields, p0, ',');
    std::getline(fields, p1, ',');
    EXPECT_EQ(predicted, expected[rows]) << line;
    EXPECT_NEAR(std::stod(p0) + std::stod(p1), 1.0, 1e-5) << line;
    EXPECT_EQ(predicted, std::stod(p1) > std::stod(p0) ? "1" : "0") << line;
    ++rows;
  }
  EXPECT_EQ(rows, 4);

  const fs::path features = write("features.csv", "a,b\n0,1\n1,0\n0,2\n2,0\n");
  const fs::path again = dir_ / "again.csv";
  ASSERT_EQ(
      run({"predict", checkpoint, "--data", "csv:" + features.string(), "--out", again.string()},
          "again"),
      0)
      << err_;
  EXPECT_EQ(read(again), read(out));

  const fs::path wide = write("wide.csv", "a,b,c\n0,1,2\n");
  EXPECT_EQ(run({"predict", checkpoint, "--data", "csv:" + wide.string(), "--out", again.string()},
                "wide"),
            2);
  EXPECT_NE(err_.find("--data"), std::string::npos) << err_;
  EXPECT_EQ(read(again), read(out)) << "the predictions already written are kept";
}

}  // namespace
}  // namespace tessera::e2e
