#include "tessera/train/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tessera/core/error.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

Checkpoint sample(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.sections["model"] = std::string("weights-") + std::to_string(step);
  c.sections["rng"] = std::string(1000, 'x');
  return c;
}

void flip_byte(const fs::path& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char b = 0;
  f.read(&b, 1);
  b ^= 0x10;
  f.seekp(at);
  f.write(&b, 1);
}

TEST_F(CheckpointTest, RoundTripKeepsStepAndSections) {
  write_checkpoint((dir_ / "a.ckpt").string(), sample(42));
  Checkpoint c = read_checkpoint((dir_ / "a.ckpt").string());
  EXPECT_EQ(c.step, 42);
  EXPECT_EQ(c.section("model"), "weights-42");
  EXPECT_EQ(c.section("rng"), std::string(1000, 'x'));
  EXPECT_THROW((void)c.section("optimizer"), FormatError);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(CheckpointTest, BitFlipIsRefusedWithChecksumError) {
  fs::path p = dir_ / "a.ckpt";
  write_checkpoint(p.string(), sample(1));
  flip_byte(p, 40);
  try {
    (void)read_checkpoint(p.string());
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, TruncatedFileIsRefused) {
  fs::path p = dir_ / "a.ckpt";
  write_checkpoint(p.string(), sample(1));
  fs::resize_file(p, fs::file_size(p) - 7);
  try {
    (void)read_checkpoint(p.string());
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, ForeignFileHasBadMagic) {
  fs::path p = dir_ / "a.ckpt";
  std::ofstream(p) << "this is not a checkpoint at all";
  try {
    (void)read_checkpoint(p.string());
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, DirKeepsNewestAndFallsBackPastCorruptOnes) {
  CheckpointDir dir(dir_.string(), 2);
  dir.save(sample(10));
  dir.save(sample(20));
  std::string newest = dir.save(sample(30));
  EXPECT_EQ(dir.list().size(), 2u);  // step 10 pruned
  flip_byte(newest, 30);
  std::vector<std::string> skipped;
  auto c = dir.latest_valid(&skipped);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->step, 20);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("step-0000000030.ckpt"), std::string::npos) << skipped[0];
}

TEST_F(CheckpointTest, EmptyDirHasNoValidCheckpoint) {
  CheckpointDir dir((dir_ / "none").string(), 3);
  std::vector<std::string> skipped;
  EXPECT_FALSE(dir.latest_valid(&skipped).has_value());
  EXPECT_TRUE(skipped.empty());
}

}  // namespace
}  // namespace tessera::train
