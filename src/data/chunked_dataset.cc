#include "tessera/data/chunked_dataset.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera::data {

ChunkedDataset::ChunkedDataset(std::string path, int64_t chunk_rows, const char* kind)
    : path_(std::move(path)), chunk_rows_(chunk_rows) {
  set_origin({path_, {}});
  if (chunk_rows < 1) {
    throw ValueError(
        detail::concat(path_, ": ", kind, ": chunk_rows is ", chunk_rows, ", expected >= 1"));
  }
}

ChunkedDataset::ChunkedDataset(const ChunkedDataset& indexed)
    : Dataset(),
      path_(indexed.path_),
      chunk_rows_(indexed.chunk_rows_),
      size_(indexed.size_),
      sample_shape_(indexed.sample_shape_),
      starts_(indexed.starts_) {
  set_origin({path_, {}});
  set_class_labels(indexed.class_labels());
}

void ChunkedDataset::add_chunk(Start start, int64_t rows) {
  starts_.push_back(start);
  size_ += rows;
}

void ChunkedDataset::load_chunk(int64_t chunk) {
  // Forget the old chunk first: if parsing throws, the next read retries rather than serving a
  // half-filled chunk.
  current_chunk_ = -1;
  const int64_t expected = std::min(chunk_rows_, size_ - chunk * chunk_rows_);
  const Start& start = starts_[static_cast<size_t>(chunk)];
  const int64_t rows = parse_chunk(start, expected);
  if (rows != expected) {
    throw FormatError(detail::concat(path_, ": chunk ", chunk, " from line ", start.line, " has ",
                                     rows, " records, expected ", expected,
                                     ": the file changed after it was indexed"));
  }
  current_chunk_ = chunk;
  ++chunks_loaded_;
}

int64_t ChunkedDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "ChunkedDataset::read_into");
  const int64_t chunk = index / chunk_rows_;
  if (chunk != current_chunk_) load_chunk(chunk);
  return read_row(index - chunk * chunk_rows_, out);
}

}  // namespace tessera::data
