#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "tessera/data/dataset.h"
#include "tessera/data/libsvm_reader.h"

namespace tessera::data {

// A LIBSVM file streamed from disk in chunks of chunk_rows records, as ChunkedCsvDataset streams a
// CSV: at most one chunk is in memory, and sparsely (its pairs, not dense rows), so the file may
// be larger than memory. Samples are dense [num_features] rows, labels class indices, as
// read_libsvm gives them (its format, options and errors, except that no dense matrix is made).
//
// Construction makes one pass that parses every record (bad ones are FormatErrors naming
// file:line:column then, not mid-training), counts them, finds the feature count and the classes
// when options leave them to the file, and notes where each chunk starts; it keeps none of them.
// read_into(i) parses chunk i / chunk_rows if it is not the current one: read in index order, or
// chunk after chunk, never globally shuffled. Not thread-safe; another_reader() gives a second
// thread a reader of its own.
class ChunkedLibsvmDataset : public Dataset {
 public:
  // Throws as read_libsvm does, and ValueError when chunk_rows < 1.
  ChunkedLibsvmDataset(const std::filesystem::path& path, const LibsvmOptions& options = {},
                       int64_t chunk_rows = 65536);
  ~ChunkedLibsvmDataset() override;

  [[nodiscard]] int64_t size() const override { return size_; }
  [[nodiscard]] const Shape& sample_shape() const override { return sample_shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override;
  // The same file and chunk index (not parsed again), read through a handle of its own.
  [[nodiscard]] std::unique_ptr<Dataset> another_reader() const override;

  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int64_t num_chunks() const { return static_cast<int64_t>(chunk_starts_.size()); }
  [[nodiscard]] int64_t chunks_loaded() const { return chunks_loaded_; }

 private:
  struct Start {
    int64_t offset;  // of the chunk's first record's line
    int64_t line;
  };
  struct Chunk;
  ChunkedLibsvmDataset(const ChunkedLibsvmDataset& indexed);
  void load_chunk(int64_t chunk);

  std::string path_;
  int64_t num_features_ = 0;
  int64_t chunk_rows_;
  int64_t size_ = 0;
  Shape sample_shape_;
  std::vector<Start> chunk_starts_;
  int64_t current_chunk_ = -1;
  int64_t chunks_loaded_ = 0;
  std::unique_ptr<Chunk> chunk_;
};

}  // namespace tessera::data
