#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "tessera/data/csv_reader.h"
#include "tessera/data/dataset.h"

namespace tessera::data {

// A CSV dataset streamed from disk in chunks of chunk_rows records; at most one chunk is in
// memory, so the file may be larger than memory. Samples are [num_features].
//
// Construction makes one pass over the file that counts records and notes where each chunk
// starts (reading it in blocks, holding none of it; ragged rows and bad fields are found later,
// when their chunk is parsed). read_into(i) parses chunk i / chunk_rows if it is not the current
// one.
// Access contract: any index is valid, but only access that stays within a chunk is cheap; each
// change of chunk re-reads and parses chunk_rows records. Read in index order, or in any order
// within a chunk then chunk after chunk (DistributedSampler with shuffle=false does this), never
// globally shuffled.
// Errors in a chunk (FormatError naming file:line:column) surface from read_into, i.e. from the
// DataLoader's next(). Not thread-safe: read_into changes the current chunk; another_reader()
// gives a second thread a reader of its own.
class ChunkedCsvDataset : public Dataset {
 public:
  // Throws as CsvReader does, FormatError when the file holds no records, ValueError when
  // chunk_rows < 1.
  ChunkedCsvDataset(const std::filesystem::path& path, const CsvOptions& options,
                    int64_t chunk_rows = 65536);
  ~ChunkedCsvDataset() override;

  [[nodiscard]] int64_t size() const override { return size_; }
  [[nodiscard]] const Shape& sample_shape() const override { return sample_shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override;
  // The same file and chunk index (not indexed again), read through a handle of its own.
  [[nodiscard]] std::unique_ptr<Dataset> another_reader() const override;

  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int64_t num_chunks() const { return static_cast<int64_t>(chunk_starts_.size()); }
  // How many chunks have been parsed so far (to check an access pattern's cost).
  [[nodiscard]] int64_t chunks_loaded() const { return chunks_loaded_; }

 private:
  struct Copy {};
  ChunkedCsvDataset(const ChunkedCsvDataset& indexed, Copy /*unused*/);
  void load_chunk(int64_t chunk);

  CsvReader reader_;
  CsvOptions options_;
  int64_t chunk_rows_;
  int64_t size_ = 0;
  Shape sample_shape_;
  std::vector<CsvReader::Position> chunk_starts_;
  int64_t current_chunk_ = -1;
  int64_t chunks_loaded_ = 0;
  std::vector<float> features_;
  std::vector<int64_t> labels_;
};

}  // namespace tessera::data
