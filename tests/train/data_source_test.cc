// Which reader a [data] spec gets: data.stream must reach every file format that streams, or a
// file bigger than memory is loaded whole without a word.
#include "tessera/train/data_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "tessera/data/chunked_csv_dataset.h"
#include "tessera/data/chunked_libsvm_dataset.h"
#include "tessera/data/in_memory_dataset.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class DataSource : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_data_source_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "t.csv") << "a,b,label\n1,2,0\n3,4,1\n";
    std::ofstream(dir_ / "t.svm") << "1 1:0.5 3:2\n0 2:1\n";
    config_.data.label_column = "label";
  }
  void TearDown() override { fs::remove_all(dir_); }

  [[nodiscard]] std::unique_ptr<data::Dataset> open(const std::string& scheme,
                                                    const std::string& file) const {
    return open_dataset(scheme + ":" + (dir_ / file).string(), config_, "data.train");
  }

  fs::path dir_;
  Config config_;
};

TEST_F(DataSource, FilesAreLoadedUnlessStreamed) {
  EXPECT_NE(dynamic_cast<data::InMemoryDataset*>(open("csv", "t.csv").get()), nullptr);
  EXPECT_NE(dynamic_cast<data::InMemoryDataset*>(open("libsvm", "t.svm").get()), nullptr);
}

TEST_F(DataSource, StreamReadsCsvAndLibsvmFilesAChunkAtATime) {
  config_.data.stream = true;
  const auto csv = open("csv", "t.csv");
  const auto svm = open("libsvm", "t.svm");
  EXPECT_NE(dynamic_cast<data::ChunkedCsvDataset*>(csv.get()), nullptr);
  EXPECT_NE(dynamic_cast<data::ChunkedLibsvmDataset*>(svm.get()), nullptr);
  EXPECT_EQ(csv->size(), 2);
  EXPECT_EQ(svm->size(), 2);
  EXPECT_EQ(svm->sample_shape(), Shape({3}));
}

}  // namespace
}  // namespace tessera::train
