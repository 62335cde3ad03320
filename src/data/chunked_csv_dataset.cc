#include "tessera/data/chunked_csv_dataset.h"

#include <algorithm>
#include <cstring>

#include "tessera/core/error.h"

namespace tessera::data {

ChunkedCsvDataset::ChunkedCsvDataset(const std::filesystem::path& path, const CsvOptions& options,
                                     int64_t chunk_rows)
    : reader_(path, options), options_(options), chunk_rows_(chunk_rows) {
  set_origin({path.string(), {}});
  if (chunk_rows < 1) {
    throw ValueError(detail::concat(path.string(), ": ChunkedCsvDataset: chunk_rows is ",
                                    chunk_rows, ", expected >= 1"));
  }
  const CsvReader::Position first = reader_.position();
  for (;;) {
    const CsvReader::Position start = reader_.position();
    const int64_t rows = reader_.skip_rows(chunk_rows_);
    if (rows == 0) break;
    chunk_starts_.push_back(start);
    size_ += rows;
    if (rows < chunk_rows_) break;
  }
  if (size_ == 0) {
    throw FormatError(detail::concat(path.string(), ":", first.line,
                                     ": no records: expected at least one",
                                     options.has_header ? " after the header" : ""));
  }
  sample_shape_ = {reader_.num_features()};
}

ChunkedCsvDataset::~ChunkedCsvDataset() = default;

std::unique_ptr<Dataset> ChunkedCsvDataset::another_reader() const {
  return std::unique_ptr<Dataset>(new ChunkedCsvDataset(*this, Copy{}));
}

ChunkedCsvDataset::ChunkedCsvDataset(const ChunkedCsvDataset& indexed, Copy /*unused*/)
    : reader_(indexed.reader_.path(), indexed.options_),
      options_(indexed.options_),
      chunk_rows_(indexed.chunk_rows_),
      size_(indexed.size_),
      sample_shape_(indexed.sample_shape_),
      chunk_starts_(indexed.chunk_starts_) {
  set_origin({indexed.reader_.path().string(), {}});
  set_class_labels(indexed.class_labels());
}

void ChunkedCsvDataset::load_chunk(int64_t chunk) {
  // Forget the old chunk first: if parsing throws, the next read retries rather than serving a
  // half-filled chunk.
  current_chunk_ = -1;
  features_.clear();
  labels_.clear();
  const int64_t expected = std::min(chunk_rows_, size_ - chunk * chunk_rows_);
  reader_.seek(chunk_starts_[static_cast<size_t>(chunk)]);
  const int64_t rows = reader_.read_rows(expected, features_, labels_);
  if (rows != expected) {
    throw FormatError(detail::concat(reader_.path().string(), ": chunk ", chunk, " from line ",
                                     chunk_starts_[static_cast<size_t>(chunk)].line, " has ", rows,
                                     " records, expected ", expected,
                                     ": the file changed after it was indexed"));
  }
  current_chunk_ = chunk;
  ++chunks_loaded_;
}

int64_t ChunkedCsvDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "ChunkedCsvDataset::read_into");
  const int64_t chunk = index / chunk_rows_;
  if (chunk != current_chunk_) load_chunk(chunk);
  const int64_t row = index - chunk * chunk_rows_;
  const int64_t numel = static_cast<int64_t>(out.size());
  std::memcpy(out.data(), features_.data() + row * numel, out.size() * sizeof(float));
  return labels_[static_cast<size_t>(row)];
}

}  // namespace tessera::data
