// `tessera train`, `eval` and `inspect` on inputs that used to crash the binary: each exits with
// 1 and one line that names the file and line, or succeeds where the input is valid.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_e2e_bad_" + std::to_string(::getpid()) + "_" + test_name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  // The config: one linear layer with `out` outputs on a LIBSVM file.
  fs::path config(const fs::path& data, int out, const std::string& loss) const {
    return write("cfg.toml",
                 "[model]\nlayers = [ { type = \"linear\", out = " + std::to_string(out) +
                     " } ]\n[data]\ntrain = \"libsvm:" + data.string() +
                     "\"\ntest = \"\"\nbatch_size = 2\n[train]\n" + "epochs = 1\nloss = \"" + loss +
                     "\"\nrun_dir = \"" + (dir_ / "run").string() + "\"\n");
  }
  // Runs `tessera ARGS...`; returns its exit code (the test fails when it hangs).
  int run(const std::vector<std::string>& args, const std::string& log) {
    Finished done = run_tessera(args, dir_ / log, 60s);
    err_ = std::move(done.err);
    return done.code;
  }
  [[nodiscard]] int err_lines() const { return count_lines_with(err_, ""); }

  fs::path dir_;
  std::string err_;
};

TEST_F(BadInput, PlusMinusOneLabelsWithMseTrainAsClassesZeroAndOne) {
  const fs::path data = write("pm.svm", "-1 1:0.5 2:1\n+1 1:1 3:2\n");
  EXPECT_EQ(run({"train", config(data, 2, "mse").string()}, "train"), 0) << err_;
  EXPECT_NE(err_.find("file labels are classes: -1 -> 0, 1 -> 1"), std::string::npos) << err_;
  // With one output there is no class for +1: an error naming the line, not heap corruption.
  EXPECT_EQ(run({"train", config(data, 1, "mse").string()}, "one"), 1);
  EXPECT_EQ(err_lines(), 1) << err_;
  EXPECT_NE(err_.find(data.string() + ":2: label 1 (class 1) is outside"), std::string::npos)
      << err_;
}

TEST_F(BadInput, HugeFeatureIndexIsOneLineNamingFileAndLine) {
  const fs::path data = write("huge.svm", "0 4611686018427387904:1\n1 1:1\n");
  EXPECT_EQ(run({"train", config(data, 2, "cross_entropy").string()}, "train"), 1);
  EXPECT_EQ(err_lines(), 1) << err_;
  EXPECT_NE(err_.find(data.string() + ":1:3: pair 1"), std::string::npos) << err_;
}

TEST_F(BadInput, EvalChecksTheDataAgainstTheModel) {
  const fs::path data = write("pm.svm", "-1 1:0.5 2:1\n+1 1:1 3:2\n");
  ASSERT_EQ(run({"train", config(data, 2, "cross_entropy").string()}, "train"), 0) << err_;
  const fs::path checkpoint = dir_ / "run" / "checkpoints" / "step-0000000001.ckpt";
  EXPECT_EQ(run({"eval", checkpoint.string(), "--data", "libsvm:" + data.string()}, "eval"), 0)
      << err_;
  const fs::path unknown = write("unknown.svm", "-1 1:1\n+1 2:1\n3 1:1\n");
  EXPECT_EQ(run({"eval", checkpoint.string(), "--data", "libsvm:" + unknown.string()}, "e2"), 1);
  EXPECT_NE(err_.find(unknown.string() + ":3: label 3 is not one of"), std::string::npos) << err_;
  const fs::path wide = write("wide.svm", "-1 1:1 4:1\n");
  EXPECT_EQ(run({"eval", checkpoint.string(), "--data", "libsvm:" + wide.string()}, "e3"), 1);
  EXPECT_NE(err_.find(wide.string() + ":1:"), std::string::npos) << err_;
}

TEST_F(BadInput, TruncatedCheckpointIsNamedByEvalAndInspect) {
  const fs::path data = write("pm.svm", "-1 1:0.5 2:1\n+1 1:1 3:2\n");
  ASSERT_EQ(run({"train", config(data, 2, "cross_entropy").string()}, "train"), 0) << err_;
  const fs::path checkpoint = dir_ / "run" / "checkpoints" / "step-0000000001.ckpt";
  fs::resize_file(checkpoint, fs::file_size(checkpoint) / 2);
  EXPECT_EQ(run({"eval", checkpoint.string(), "--data", "libsvm:" + data.string()}, "eval"), 1);
  EXPECT_NE(err_.find(checkpoint.string()), std::string::npos) << err_;
  EXPECT_NE(err_.find("truncated or corrupt"), std::string::npos) << err_;
  EXPECT_EQ(run({"inspect", checkpoint.string()}, "inspect"), 1);
  EXPECT_NE(err_.find("truncated or corrupt"), std::string::npos) << err_;
}

}  // namespace
}  // namespace tessera::e2e
