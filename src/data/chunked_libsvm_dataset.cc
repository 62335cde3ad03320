#include "tessera/data/chunked_libsvm_dataset.h"

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "libsvm_parser.h"
#include "line_reader.h"
#include "tessera/core/error.h"

namespace tessera::data {

// The file's lines and the current chunk's records, parsed.
struct ChunkedLibsvmDataset::Chunk {
  Chunk(const std::string& path, int64_t num_features)
      : lines(path), parser(path, num_features, false) {}
  LineReader lines;
  LibsvmParser parser;
  SparseRows rows;
};

namespace {

// The class of each label as read_libsvm maps it; a label not among `classes` names its line.
int64_t class_of(const std::string& path, const std::vector<int64_t>& classes, int64_t label,
                 int64_t line) {
  const auto it = std::lower_bound(classes.begin(), classes.end(), label);
  if (it == classes.end() || *it != label) {
    std::string known;
    for (size_t c = 0; c < classes.size() && c < 16; ++c) {
      known += (c ? ", " : "") + std::to_string(classes[c]);
    }
    if (classes.size() > 16) known += ", ...";
    throw FormatError(detail::concat(path, ":", line, ": label ", label,
                                     " is not one of the training set's labels (", known, ")"));
  }
  return it - classes.begin();
}

}  // namespace

ChunkedLibsvmDataset::ChunkedLibsvmDataset(const std::filesystem::path& path,
                                           const LibsvmOptions& options, int64_t chunk_rows)
    : path_(path.string()), chunk_rows_(chunk_rows) {
  set_origin({path_, {}});
  if (chunk_rows < 1) {
    throw ValueError(detail::concat(path_, ": ChunkedLibsvmDataset: chunk_rows is ", chunk_rows,
                                    ", expected >= 1"));
  }
  if (options.num_features < 0) {
    throw ValueError(detail::concat(path_, ": LibsvmOptions::num_features is ",
                                    options.num_features, ", expected >= 0 (0: infer)"));
  }
  const auto& given = options.class_labels;
  if (std::adjacent_find(given.begin(), given.end(), std::greater_equal<>()) != given.end()) {
    throw ValueError(path_ + ": LibsvmOptions::class_labels must be strictly increasing");
  }
  LineReader lines(path);
  const bool inferred = options.num_features == 0;
  LibsvmParser parser(path_, inferred ? kMaxInferredLibsvmFeatures : options.num_features,
                      inferred);
  SparseRows rows;  // one record at a time
  std::set<int64_t> labels;
  int64_t max_index = 0;
  std::string_view line;
  while (lines.next(line)) {
    if (!libsvm_record_text(line)) continue;
    if (size_ % chunk_rows_ == 0)
      chunk_starts_.push_back({lines.line_offset(), lines.line_number()});
    rows.clear();
    parser.parse_line(line, lines.line_number(), rows);
    max_index = std::max(max_index, rows.max_index);
    const int64_t label = rows.labels[0];
    if (!given.empty()) {
      (void)class_of(path_, given, label, lines.line_number());
    } else {
      labels.insert(label);
    }
    ++size_;
  }
  if (size_ == 0) {
    throw FormatError(detail::concat(path_, ": no records in ", lines.line_number(),
                                     " lines: expected lines of '<label> <index>:<value> ...'"));
  }
  if (inferred && max_index == 0) {
    throw FormatError(detail::concat(path_,
                                     ": no record has a feature, so the feature count "
                                     "cannot be inferred; set LibsvmOptions::num_features"));
  }
  num_features_ = inferred ? max_index : options.num_features;
  sample_shape_ = {num_features_};
  set_class_labels(given.empty() ? std::vector<int64_t>(labels.begin(), labels.end()) : given);
  chunk_ = std::make_unique<Chunk>(path_, num_features_);
}

ChunkedLibsvmDataset::~ChunkedLibsvmDataset() = default;

std::unique_ptr<Dataset> ChunkedLibsvmDataset::another_reader() const {
  return std::unique_ptr<Dataset>(new ChunkedLibsvmDataset(*this));
}

ChunkedLibsvmDataset::ChunkedLibsvmDataset(const ChunkedLibsvmDataset& indexed)
    : path_(indexed.path_),
      num_features_(indexed.num_features_),
      chunk_rows_(indexed.chunk_rows_),
      size_(indexed.size_),
      sample_shape_(indexed.sample_shape_),
      chunk_starts_(indexed.chunk_starts_),
      chunk_(std::make_unique<Chunk>(indexed.path_, indexed.num_features_)) {
  set_origin({path_, {}});
  set_class_labels(indexed.class_labels());
}

void ChunkedLibsvmDataset::load_chunk(int64_t chunk) {
  // Forget the old chunk first: if parsing throws, the next read retries rather than serving a
  // half-filled chunk.
  current_chunk_ = -1;
  SparseRows& rows = chunk_->rows;
  rows.clear();
  const int64_t expected = std::min(chunk_rows_, size_ - chunk * chunk_rows_);
  const Start& start = chunk_starts_[static_cast<size_t>(chunk)];
  chunk_->lines.seek(start.offset, start.line);
  std::string_view line;
  while (static_cast<int64_t>(rows.labels.size()) < expected && chunk_->lines.next(line)) {
    if (libsvm_record_text(line))
      chunk_->parser.parse_line(line, chunk_->lines.line_number(), rows);
  }
  if (static_cast<int64_t>(rows.labels.size()) != expected) {
    throw FormatError(detail::concat(path_, ": chunk ", chunk, " from line ", start.line, " has ",
                                     rows.labels.size(), " records, expected ", expected,
                                     ": the file changed after it was indexed"));
  }
  for (size_t r = 0; r < rows.labels.size(); ++r) {
    rows.labels[r] = class_of(path_, class_labels(), rows.labels[r], rows.lines[r]);
  }
  current_chunk_ = chunk;
  ++chunks_loaded_;
}

int64_t ChunkedLibsvmDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "ChunkedLibsvmDataset::read_into");
  const int64_t chunk = index / chunk_rows_;
  if (chunk != current_chunk_) load_chunk(chunk);
  const auto row = static_cast<size_t>(index - chunk * chunk_rows_);
  const SparseRows& rows = chunk_->rows;
  std::fill(out.begin(), out.end(), 0.0F);
  for (int64_t k = rows.row_starts[row]; k < rows.row_starts[row + 1]; ++k) {
    out[static_cast<size_t>(rows.indices[static_cast<size_t>(k)])] =
        rows.values[static_cast<size_t>(k)];
  }
  return rows.labels[row];
}

}  // namespace tessera::data
