// Ordinary inputs that used to crash `tessera train`, and the family around them: labels outside
// the model's classes, sizes from files, models larger than the machine. Each is an error that
// names where it comes from.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/model_builder.h"
#include "tessera/train/saved_model.h"
#include "tessera/train/trainer.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_bad_input_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  // A linear classifier with `out` classes on data.train = `train` (and no test set unless given).
  Config config(const std::string& train, int out, const std::string& loss,
                const std::string& test = "") {
    return parse_config(detail::concat("[model]\nlayers = [ { type = \"linear\", out = ", out,
                                       " } ]\n[data]\nbatch_size = 2\ntrain = \"", train,
                                       "\"\ntest = \"", test, "\"\n[train]\nepochs = 2\nloss = \"",
                                       loss, "\"\nrun_dir = \"", (dir_ / "run").string(), "\"\n"),
                        (dir_ / "cfg.toml").string());
  }

  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected an error";
    return "";
  }

  fs::path dir_;
};

::testing::AssertionResult names_all(const std::string& what,
                                     const std::vector<std::string>& parts) {
  for (const auto& p : parts) {
    if (what.find(p) == std::string::npos) {
      return ::testing::AssertionFailure() << "'" << what << "' does not name '" << p << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_F(BadInputTest, LibsvmPlusMinusOneLabelsAreClassesForEveryLoss) {
  // The issue's first input: -1/+1 labels with mse wrote the one-hot target out of bounds.
  const std::string path = write("pm.svm", "-1 1:0.5 2:1\n+1 1:1 3:2\n");
  for (const std::string loss : {"cross_entropy", "mse", "bce"}) {
    fs::remove_all(dir_ / "run");
    Trainer trainer(config("libsvm:" + path, 2, loss), {.progress = nullptr});
    const TrainResult result = trainer.run();
    EXPECT_EQ(result.steps, 2) << loss;
    EXPECT_TRUE(std::isfinite(result.train_loss)) << loss;
    const SavedModel saved = load_saved_model(read_checkpoint(result.last_checkpoint));
    EXPECT_EQ(saved.class_labels, (std::vector<int64_t>{-1, 1})) << loss;
    EXPECT_EQ(saved.classes, 2) << loss;
  }
}

TEST_F(BadInputTest, LabelOutsideTheModelsClassesNamesFileAndLineForEveryLoss) {
  const std::string csv = write("bad.csv", "label,a,b\n0,1,2\n\n5,1,1\n");
  const std::string good = write("good.csv", "label,a,b\n0,1,2\n1,1,1\n");
  for (const std::string loss : {"cross_entropy", "mse", "bce"}) {
    EXPECT_TRUE(names_all(error_of([&] { Trainer(config("csv:" + csv, 2, loss), {}); }),
                          {"data.train", csv + ":4", "label 5", "2 classes"}))
        << loss;
    EXPECT_TRUE(
        names_all(error_of([&] { Trainer(config("csv:" + good, 2, loss, "csv:" + csv), {}); }),
                  {"data.test", csv + ":4", "label 5"}))
        << loss;
  }
  // Mapped labels name the file's label too.
  const std::string svm = write("three.svm", "1 1:1\n2 1:1\n3 1:1\n");
  EXPECT_TRUE(names_all(error_of([&] { Trainer(config("libsvm:" + svm, 2, "mse"), {}); }),
                        {svm + ":3", "label 3 (class 2)", "2 classes"}));
}

TEST_F(BadInputTest, HugeLibsvmIndexNamesFileAndLine) {
  // The issue's second input: the element count overflowed size_t and a small buffer was written.
  const std::string path = write("huge.svm", "0 4611686018427387904:1\n1 1:1\n");
  EXPECT_TRUE(
      names_all(error_of([&] { Trainer(config("libsvm:" + path, 2, "cross_entropy"), {}); }),
                {path + ":1:3", "4611686018427387904"}));
}

TEST_F(BadInputTest, LibsvmTestSetTakesTheTrainingSetsWidthAndLabels) {
  const std::string train = write("train.svm", "-1 1:1 3:1\n+1 2:1\n");
  // Fewer features and only one of the labels: still the training set's layout.
  const std::string test = write("test.svm", "+1 1:1\n+1 2:1\n");
  Trainer trainer(config("libsvm:" + train, 2, "cross_entropy", "libsvm:" + test),
                  {.progress = nullptr});
  EXPECT_EQ(trainer.run().test.count, 2);
  const std::string wide = write("wide.svm", "+1 1:1\n-1 4:1\n");
  EXPECT_TRUE(names_all(error_of([&] {
                          Trainer(config("libsvm:" + train, 2, "cross_entropy", "libsvm:" + wide),
                                  {});
                        }),
                        {wide + ":2", "index 4", "num_features 3"}));
  const std::string other = write("other.svm", "+1 1:1\n2 1:1\n");
  EXPECT_TRUE(names_all(error_of([&] {
                          Trainer(config("libsvm:" + train, 2, "cross_entropy", "libsvm:" + other),
                                  {});
                        }),
                        {other + ":2", "label 2", "-1, 1"}));
}

TEST_F(BadInputTest, ModelBeyondThisMachinesMemoryFailsAtBuildNamingTheLayer) {
  const Config c = parse_config(
      "[model]\nlayers = [ { type = \"linear\", out = 4096 }, { type = \"relu\" },\n"
      "  { type = \"linear\", out = 2147483648 } ]\n",
      "big.toml");
  Generator init(0), dropout(0);
  // 4096 x 2^31 weights and their gradients: 64 TiB.
  EXPECT_TRUE(names_all(
      error_of([&] { (void)build_model(c, {784}, init, dropout); }),
      {"big.toml:3", "model.layers[2]", "needs at least", "TiB", "of this machine's memory"}));
  // The limit counts a batch of activations too.
  const Config wide = parse_config(
      "[model]\nlayers = [ { type = \"conv2d\", out = 4096, kernel = 3, padding = 1 } ]\n"
      "[data]\nbatch_size = 512\n",
      "wide.toml");
  EXPECT_TRUE(names_all(error_of([&] {
                          (void)build_model(wide, {1, 28, 28}, init, dropout, nullptr, {}, 1 << 30);
                        }),
                        {"model.layers[0]", "activations of a batch of 512"}));
}

TEST_F(BadInputTest, SavedModelTakesTheClassCountFromTheModel) {
  const std::string csv = write("t.csv", "label,a\n0,1\n1,2\n2,3\n");
  Trainer trainer(config("csv:" + csv, 3, "cross_entropy"), {.progress = nullptr});
  const std::string path = trainer.run().last_checkpoint;
  Checkpoint c = read_checkpoint(path);
  c.sections["meta"] = R"({"sample_shape":[1],"classes":1000000000000})";
  write_checkpoint(path, c);
  EXPECT_EQ(load_saved_model(read_checkpoint(path)).classes, 3);
  c.sections["meta"] = R"({"sample_shape":[1,-4]})";
  write_checkpoint(path, c);
  EXPECT_TRUE(names_all(error_of([&] { (void)load_saved_model(read_checkpoint(path)); }),
                        {path, "sample shape [1,-4]"}));
}

TEST_F(BadInputTest, CheckpointLengthsAreCheckedBeforeAllocating) {
  const std::string csv = write("t.csv", "label,a\n0,1\n1,2\n");
  Trainer trainer(config("csv:" + csv, 2, "cross_entropy"), {.progress = nullptr});
  const std::string path = trainer.run().last_checkpoint;
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The payload length sits outside the checksum: claim 2^40 bytes.
  std::string header_lies = bytes;
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(header_lies.data() + 12, &huge, sizeof(huge));
  std::ofstream(dir_ / "lies.ckpt", std::ios::binary) << header_lies;
  EXPECT_TRUE(names_all(error_of([&] { (void)read_checkpoint((dir_ / "lies.ckpt").string()); }),
                        {"lies.ckpt", "payload of 1099511627776 bytes", "truncated or corrupt"}));
}

}  // namespace
}  // namespace tessera::train
