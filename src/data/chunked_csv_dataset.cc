#include "tessera/data/chunked_csv_dataset.h"

#include <cstring>

#include "tessera/core/error.h"

namespace tessera::data {

ChunkedCsvDataset::ChunkedCsvDataset(const std::filesystem::path& path, const CsvOptions& options,
                                     int64_t chunk_rows)
    : ChunkedDataset(path.string(), chunk_rows, "ChunkedCsvDataset"),
      reader_(path, options),
      options_(options) {
  const CsvReader::Position first = reader_.position();
  for (;;) {
    const CsvReader::Position start = reader_.position();
    const int64_t rows = reader_.skip_rows(chunk_rows);
    if (rows == 0) break;
    add_chunk({start.offset, start.line}, rows);
    if (rows < chunk_rows) break;
  }
  if (size() == 0) {
    throw FormatError(detail::concat(path.string(), ":", first.line,
                                     ": no records: expected at least one",
                                     options.has_header ? " after the header" : ""));
  }
  set_sample_shape({reader_.num_features()});
}

ChunkedCsvDataset::~ChunkedCsvDataset() = default;

std::unique_ptr<Dataset> ChunkedCsvDataset::another_reader() const {
  return std::unique_ptr<Dataset>(new ChunkedCsvDataset(*this));
}

ChunkedCsvDataset::ChunkedCsvDataset(const ChunkedCsvDataset& indexed)
    : ChunkedDataset(indexed),
      reader_(indexed.reader_.path(), indexed.options_),
      options_(indexed.options_) {}

int64_t ChunkedCsvDataset::parse_chunk(const Start& start, int64_t rows) {
  features_.clear();
  labels_.clear();
  reader_.seek({start.offset, start.line});
  return reader_.read_rows(rows, features_, labels_);
}

int64_t ChunkedCsvDataset::read_row(int64_t row, std::span<float> out) const {
  const auto numel = static_cast<int64_t>(out.size());
  std::memcpy(out.data(), features_.data() + row * numel, out.size() * sizeof(float));
  return labels_[static_cast<size_t>(row)];
}

}  // namespace tessera::data
