#include "tessera/data/builtin.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"
#include "tessera/data/data_loader.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/mmap_idx_dataset.h"

namespace tessera::data {
namespace {

using testing::idx_bytes;
using testing::TempDir;

const std::filesystem::path kFashionDir = "/usr/share/datasets/fashion-mnist";

bool fashion_mnist_installed() {
  return std::filesystem::exists(kFashionDir / "train-images-idx3-ubyte.gz") &&
         std::filesystem::exists(kFashionDir / "t10k-labels-idx1-ubyte.gz");
}

TEST(LoadBuiltin, FashionMnistTrainAndTestFromTheDebianPackage) {
  if (!fashion_mnist_installed()) {
    GTEST_SKIP() << kFashionDir << " not found: install the Debian package dataset-fashion-mnist";
  }
  const auto start = std::chrono::steady_clock::now();
  const auto train = load_builtin("fashion-mnist:train");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ timing   ] fashion-mnist:train loaded in " << seconds << " s\n";
  ASSERT_EQ(train->size(), 60000);
  EXPECT_EQ(train->sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(train->pixels().size(), 60000u * 28 * 28);
  // The first training image is an ankle boot (class 9); the second a T-shirt (class 0).
  EXPECT_EQ(train->labels().data<int64_t>()[0], 9);
  EXPECT_EQ(train->labels().data<int64_t>()[1], 0);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t label : train->labels().to_vector<int64_t>()) {
    ASSERT_GE(label, 0);
    ASSERT_LE(label, 9);
    ++per_class[static_cast<size_t>(label)];
  }
  for (int64_t count : per_class) EXPECT_EQ(count, 6000);  // balanced classes
  double sum = 0.0;
  double sum_squares = 0.0;
  float lo = 1.0f;
  float hi = 0.0f;
  std::vector<float> sample(28 * 28);
  for (int64_t i = 0; i < train->size(); ++i) {
    (void)train->read_into(i, sample);
    for (float v : sample) {
      sum += v;
      sum_squares += static_cast<double>(v) * v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
  const auto count = static_cast<double>(train->pixels().size());
  const double mean = sum / count;
  EXPECT_NEAR(mean, kFashionMnistMean, 5e-4);
  EXPECT_NEAR(std::sqrt(sum_squares / count - mean * mean), kFashionMnistStd, 5e-4);

  const auto test = load_builtin("fashion-mnist:test");
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(test->labels().data<int64_t>()[0], 9);
}

TEST(LoadBuiltin, NormalizationIsAppliedToThePixels) {
  if (!fashion_mnist_installed()) {
    GTEST_SKIP() << kFashionDir << " not found: install the Debian package dataset-fashion-mnist";
  }
  const auto plain = load_builtin("fashion-mnist:test");
  const auto centred = load_builtin(
      "fashion-mnist:test", {.normalize = {.mean = kFashionMnistMean, .std = kFashionMnistStd}});
  const std::vector<int64_t> picks{0, 400, 8928};
  const auto a = plain->get_batch(picks).x.to_vector<float>();
  const auto b = centred->get_batch(picks).x.to_vector<float>();
  for (size_t i = 0; i < a.size(); i += 97) {
    EXPECT_NEAR(b[i], (a[i] - kFashionMnistMean) / kFashionMnistStd, 1e-5) << "element " << i;
  }
}

TEST(LoadBuiltin, MmapOfTheRealTestImagesMatchesTheLoader) {
  if (!fashion_mnist_installed()) {
    GTEST_SKIP() << kFashionDir << " not found: install the Debian package dataset-fashion-mnist";
  }
  // Decompress the test images into an uncompressed IDX file to map.
  TempDir dir;
  const IdxFile images = IdxFile::read(kFashionDir / "t10k-images-idx3-ubyte.gz");
  const auto raw = images.raw();
  std::vector<uint8_t> bytes = idx_bytes(0x08, {10000, 28, 28}, {raw.begin(), raw.end()});
  const auto path = dir.write("t10k-images-idx3-ubyte", bytes);
  MmapIdxDataset mapped(path, kFashionDir / "t10k-labels-idx1-ubyte.gz");
  const auto loaded = load_builtin("fashion-mnist:test");
  const std::vector<int64_t> picks{0, 1, 4999, 9999};
  const Batch a = mapped.get_batch(picks);
  const Batch b = loaded->get_batch(picks);
  EXPECT_EQ(a.x.to_vector<float>(), b.x.to_vector<float>());
  EXPECT_EQ(a.y.to_vector<int64_t>(), b.y.to_vector<int64_t>());
}

TEST(LoadBuiltin, MissingFilesNameThePathAndTheDebianPackage) {
  TempDir dir;
  EXPECT_THROW_WITH(load_builtin("fashion-mnist:train", {.root = dir.path()}), ValueError,
                    (dir / "fashion-mnist" / "train-images-idx3-ubyte.gz").string(), "not found",
                    "install the Debian package dataset-fashion-mnist (sudo apt-get install "
                    "dataset-fashion-mnist)");
}

TEST(LoadBuiltin, FindsUncompressedFilesUnderAnotherRoot) {
  TempDir dir;
  std::filesystem::create_directory(dir / "fashion-mnist");
  std::vector<uint8_t> pixels(2 * 28 * 28, 255);
  pixels[0] = 51;
  dir.write("fashion-mnist/t10k-images-idx3-ubyte", idx_bytes(0x08, {2, 28, 28}, pixels));
  dir.write_gz("fashion-mnist/t10k-labels-idx1-ubyte.gz", idx_bytes(0x08, {2}, {3, 7}));
  const auto data = load_builtin("fashion-mnist:test", {.root = dir.path()});
  EXPECT_EQ(data->size(), 2);
  const Batch both = data->get_batch(std::vector<int64_t>{0, 1});
  EXPECT_EQ(both.x.shape(), (Shape{2, 1, 28, 28}));
  EXPECT_FLOAT_EQ(both.x.data<float>()[0], 0.2f);
  EXPECT_EQ(both.x.data<float>()[1], 1.0f);
  EXPECT_EQ(data->labels().to_vector<int64_t>(), (std::vector<int64_t>{3, 7}));
}

TEST(LoadBuiltin, UnknownNamesListTheKnownOnes) {
  EXPECT_THROW_WITH(load_builtin("cifar10:train"), ValueError, "cifar10:train",
                    "fashion-mnist:train, fashion-mnist:test");
  EXPECT_THROW_WITH(load_builtin("mnist:train"), ValueError, "Debian packages no MNIST");
  EXPECT_EQ(builtin_names(),
            (std::vector<std::string>{"fashion-mnist:train", "fashion-mnist:test"}));
}

}  // namespace
}  // namespace tessera::data
