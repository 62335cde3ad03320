#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tessera/data/dataset.h"

namespace tessera::data {

// A data set streamed from a file in chunks of chunk_rows records; at most one chunk is in
// memory, so the file may be larger than memory. A subclass indexes the file once, noting where
// each chunk starts (add_chunk), and parses one chunk when read_into reaches it.
// Access contract: any index is valid, but only access that stays within a chunk is cheap; each
// change of chunk re-reads and parses chunk_rows records. Read in index order, or in any order
// within a chunk then chunk after chunk (DistributedSampler with shuffle=false does this), never
// globally shuffled.
// Not thread-safe: read_into changes the current chunk; another_reader() gives a second thread a
// reader of its own.
class ChunkedDataset : public Dataset {
 public:
  // Where a chunk's first record's line begins in the file.
  struct Start {
    int64_t offset = 0;
    int64_t line = 1;
  };

  [[nodiscard]] int64_t size() const final { return size_; }
  [[nodiscard]] const Shape& sample_shape() const final { return sample_shape_; }
  int64_t read_into(int64_t index, std::span<float> out) final;

  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int64_t num_chunks() const { return static_cast<int64_t>(starts_.size()); }
  // How many chunks have been parsed so far (to check an access pattern's cost).
  [[nodiscard]] int64_t chunks_loaded() const { return chunks_loaded_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 protected:
  // Throws ValueError naming `kind` when chunk_rows < 1.
  ChunkedDataset(std::string path, int64_t chunk_rows, const char* kind);
  // The index of `indexed` (not made again), with no chunk read yet: for another_reader().
  ChunkedDataset(const ChunkedDataset& indexed);

  // While indexing: a chunk of `rows` records starts at `start`.
  void add_chunk(Start start, int64_t rows);
  void set_sample_shape(Shape shape) { sample_shape_ = std::move(shape); }

  // Parses the chunk of `rows` records from `start`, replacing the last one; returns how many
  // records it found (fewer: the file changed since it was indexed). Throws FormatError naming
  // file:line for a bad record.
  virtual int64_t parse_chunk(const Start& start, int64_t rows) = 0;
  // Row `row` of the parsed chunk into out (sample_numel() floats); returns its label.
  virtual int64_t read_row(int64_t row, std::span<float> out) const = 0;

 private:
  void load_chunk(int64_t chunk);

  std::string path_;
  int64_t chunk_rows_;
  int64_t size_ = 0;
  Shape sample_shape_;
  std::vector<Start> starts_;
  int64_t current_chunk_ = -1;
  int64_t chunks_loaded_ = 0;
};

}  // namespace tessera::data
