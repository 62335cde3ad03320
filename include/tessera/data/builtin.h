#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tessera/data/byte_image_dataset.h"
#include "tessera/data/normalize_options.h"

namespace tessera::data {

// Fashion-MNIST's per-pixel mean and standard deviation over the training set, after scaling to
// [0, 1]; pass them in NormalizeOptions to centre the data.
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

struct BuiltinOptions {
  // Directory holding one folder per data set, as Debian's dataset-* packages install them.
  std::filesystem::path root = "/usr/share/datasets";
  // Default: pixels scaled to [0, 1], not centred.
  NormalizeOptions normalize{};
};

// Loads a data set by name into memory:
//   "fashion-mnist:train"  60000 samples   "fashion-mnist:test"  10000 samples
// from <root>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (the uncompressed
// names without .gz are accepted too). Samples float32 [1, 28, 28] (kept as bytes, converted per
// sample), labels int64 [N] in 0..9.
// A missing file is a ValueError naming the path and the Debian package to install; an unknown
// name is a ValueError listing the known ones. (Debian packages no MNIST; read its IDX files with
// IdxFile::read.)
[[nodiscard]] std::unique_ptr<ByteImageDataset> load_builtin(const std::string& name,
                                                             const BuiltinOptions& options = {});

// The names load_builtin accepts.
[[nodiscard]] std::vector<std::string> builtin_names();

}  // namespace tessera::data
