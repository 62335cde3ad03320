// Data bigger than memory: a CSV table four times the memory each process may use. With
// data.stream, logistic regression, k-means and boosted trees train from it, every process's peak
// resident memory below the cap; loading the file instead breaks it.
//
// The cap is checked on the kernel's high-water mark of each process's resident memory
// (getrusage's ru_maxrss of the children, which covers the launcher's workers once they are
// reaped): a process that stayed below it would have lived under a hard limit there.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

constexpr int kFeatures = 100;
constexpr int kRows = 270000;  // about 240 MB of text

// The largest resident memory any child process of this test had, in MiB (printed: the log
// shows how far below the cap each job stayed).
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  const double mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  std::printf("peak resident memory of a process so far: %.1f MiB\n", mib);
  return mib;
}

class OutOfCore : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("tessera_e2e_out_of_core_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    write_table(*dir_ / "train.csv", kRows, 1);
    write_table(*dir_ / "test.csv", 2000, 2);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  // Features from a standard normal, the label of a logistic model of the first ten.
  static void write_table(const fs::path& path, int rows, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<double> uniform;
    std::FILE* out = std::fopen(path.c_str(), "w");
    ASSERT_NE(out, nullptr) << path;
    for (int f = 0; f < kFeatures; ++f) std::fprintf(out, "x%d,", f);
    std::fprintf(out, "y\n");
    for (int r = 0; r < rows; ++r) {
      double margin = 0;
      for (int f = 0; f < kFeatures; ++f) {
        const float x = normal(gen);
        if (f < 10) margin += (f % 2 == 0 ? 1.0 : -1.0) * x;
        std::fprintf(out, "%.6f,", x);
      }
      std::fprintf(out, "%d\n", uniform(gen) < 1.0 / (1.0 + std::exp(-margin)) ? 1 : 0);
    }
    ASSERT_EQ(std::fclose(out), 0);
  }

  // Trains `model` (its [model] lines) from the table; returns the output.
  static std::string train(const std::string& model, int nproc, bool stream) {
    const fs::path config = *dir_ / "job.toml";
    std::ofstream(config) << "[model]\n"
                          << model << "\n[data]\ntrain = \"csv:" << (*dir_ / "train.csv").string()
                          << "\"\ntest = \"csv:" << (*dir_ / "test.csv").string()
                          << "\"\nlabel_column = \"y\"\nstream = " << (stream ? "true" : "false")
                          << "\n[train]\nrun_dir = \"" << (*dir_ / "run").string() << "\"\n";
    Finished done = run_tessera({"train", config.string(), "--nproc", std::to_string(nproc)},
                                *dir_ / "train", 150s);
    EXPECT_EQ(done.code, 0) << done.err;
    return done.out;
  }

  static double cap_mib() {
    return static_cast<double>(fs::file_size(*dir_ / "train.csv")) / 4.0 / (1 << 20);
  }

  static fs::path* dir_;
};

fs::path* OutOfCore::dir_ = nullptr;

// One test, one process (gtest_discover_tests): the high-water mark is of its jobs alone, and it
// only rises, so the streamed jobs run first, each checked as it ends, and the control last.
TEST_F(OutOfCore, EstimatorsStreamTheFileUnderAQuarterOfItsSize) {
  std::string out = train("type = \"logistic_regression\"\nl2 = 1e-4\nmax_iter = 5", 2, true);
  EXPECT_NE(out.find("logistic_regression: 270000 rows, 5 iterations"), std::string::npos) << out;
  EXPECT_NE(out.find("test accuracy 8"), std::string::npos) << out;
  EXPECT_LT(peak_rss_mib(), cap_mib()) << "logistic regression";

  out = train("type = \"kmeans\"\nclusters = 10\nmax_iter = 3", 2, true);
  EXPECT_NE(out.find("kmeans: 270000 rows, 3 iterations"), std::string::npos) << out;
  EXPECT_LT(peak_rss_mib(), cap_mib()) << "k-means";

  // Trees keep each row quantised (a byte a feature and about 70 bytes of gradients, margins and
  // indices): four processes hold a quarter of them each.
  out =
      train("type = \"boosted_trees\"\nobjective = \"binary\"\nrounds = 3\nmax_depth = 4", 4, true);
  EXPECT_NE(out.find("boosted_trees: 270000 rows, 3 iterations"), std::string::npos) << out;
  EXPECT_NE(out.find("test AUC 0.8"), std::string::npos) << out;
  EXPECT_LT(peak_rss_mib(), cap_mib()) << "boosted trees";

  // The control: the file loaded instead breaks the cap, so the cap measures something.
  out = train("type = \"logistic_regression\"\nl2 = 1e-4\nmax_iter = 1", 2, false);
  EXPECT_NE(out.find("logistic_regression: 270000 rows"), std::string::npos) << out;
  EXPECT_GT(peak_rss_mib(), cap_mib()) << "the file loaded";
}

}  // namespace
}  // namespace tessera::e2e
