#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "tessera/data/chunked_dataset.h"
#include "tessera/data/csv_reader.h"

namespace tessera::data {

// A CSV file streamed from disk in chunks (ChunkedDataset's contract). Samples are
// [num_features].
//
// Construction makes one pass over the file that counts records and notes where each chunk
// starts (reading it in blocks, holding none of it; ragged rows and bad fields are found later,
// when their chunk is parsed). Errors in a chunk (FormatError naming file:line:column) surface
// from read_into, i.e. from the DataLoader's next().
class ChunkedCsvDataset : public ChunkedDataset {
 public:
  // Throws as CsvReader does, FormatError when the file holds no records, ValueError when
  // chunk_rows < 1.
  ChunkedCsvDataset(const std::filesystem::path& path, const CsvOptions& options,
                    int64_t chunk_rows = 65536);
  ~ChunkedCsvDataset() override;

  // The same file and chunk index (not indexed again), read through a handle of its own.
  [[nodiscard]] std::unique_ptr<Dataset> another_reader() const override;

 private:
  ChunkedCsvDataset(const ChunkedCsvDataset& indexed);
  int64_t parse_chunk(const Start& start, int64_t rows) override;
  int64_t read_row(int64_t row, std::span<float> out) const override;

  CsvReader reader_;
  CsvOptions options_;
  std::vector<float> features_;
  std::vector<int64_t> labels_;
};

}  // namespace tessera::data
