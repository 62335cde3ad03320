#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "tessera/data/chunked_dataset.h"
#include "tessera/data/libsvm_reader.h"

namespace tessera::data {

// A LIBSVM file streamed from disk in chunks (ChunkedDataset's contract), each kept sparsely (its
// pairs, not dense rows). Samples are dense [num_features] rows, labels class indices, as
// read_libsvm gives them (its format, options and errors, except that no dense matrix is made).
//
// Construction makes one pass that parses every record (bad ones are FormatErrors naming
// file:line:column then, not mid-training), counts them, finds the feature count and the classes
// when options leave them to the file, and notes where each chunk starts; it keeps none of them.
class ChunkedLibsvmDataset : public ChunkedDataset {
 public:
  // Throws as read_libsvm does, and ValueError when chunk_rows < 1.
  ChunkedLibsvmDataset(const std::filesystem::path& path, const LibsvmOptions& options = {},
                       int64_t chunk_rows = 65536);
  ~ChunkedLibsvmDataset() override;

  // The same file and chunk index (not parsed again), read through a handle of its own.
  [[nodiscard]] std::unique_ptr<Dataset> another_reader() const override;

 private:
  struct Chunk;
  ChunkedLibsvmDataset(const ChunkedLibsvmDataset& indexed);
  int64_t parse_chunk(const Start& start, int64_t rows) override;
  int64_t read_row(int64_t row, std::span<float> out) const override;

  int64_t num_features_ = 0;
  std::unique_ptr<Chunk> chunk_;
};

}  // namespace tessera::data
