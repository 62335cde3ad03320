#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

#include "tessera/data/dataset.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/normalize_options.h"
#include "tessera/tensor/tensor.h"

namespace tessera::data {

struct MmapIdxOptions {
  NormalizeOptions normalize{};
  // For an image file [N, H, W], samples are [1, H, W] (the channel axis a convolution wants);
  // false keeps [H, W]. Files of other ranks are never reshaped.
  bool add_channel_axis = true;
};

// A dataset over an uncompressed IDX images file that is memory-mapped, not read: only the pages
// of the samples actually read are loaded, so the file may be larger than memory. Each sample is
// converted on read (raw * multiplier + offset, see NormalizeOptions), giving the same values as
// IdxFile::read(...).to_float32(multiplier, offset). The labels file (small: one value per
// sample) is read into memory and may be gzip-compressed.
//
// Any index costs the same (random access). Threading: read-only after construction; any number
// of threads may read at once. The mapping lives as long as the dataset.
class MmapIdxDataset : public Dataset {
 public:
  // Throws FormatError (naming the file and byte offset) on a malformed header or a size that
  // does not match the dims, ValueError when the images file is gzip-compressed or cannot be
  // opened, or when the two files disagree on the number of samples.
  MmapIdxDataset(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                 const MmapIdxOptions& options = {});
  ~MmapIdxDataset() override;

  [[nodiscard]] int64_t size() const override { return size_; }
  [[nodiscard]] const Shape& sample_shape() const override { return sample_shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override;
  [[nodiscard]] bool concurrent_reads() const override { return true; }
  [[nodiscard]] int64_t label(int64_t index) override;

  [[nodiscard]] const IdxHeader& header() const { return header_; }
  // int64 [N].
  [[nodiscard]] const Tensor& labels() const { return labels_; }

 private:
  std::filesystem::path path_;
  IdxHeader header_;
  Shape sample_shape_;
  int64_t size_ = 0;
  int64_t sample_numel_ = 0;
  float multiplier_ = 1.0f;
  float offset_ = 0.0f;
  Tensor labels_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
};

}  // namespace tessera::data
