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
    : ChunkedDataset(path.string(), chunk_rows, "ChunkedLibsvmDataset") {
  const std::string& file = this->path();
  check_libsvm_options(file, options);
  const auto& given = options.class_labels;
  LineReader lines(path);
  const bool inferred = options.num_features == 0;
  LibsvmParser parser(file, inferred ? kMaxInferredLibsvmFeatures : options.num_features, inferred);
  SparseRows rows;  // one record at a time
  std::set<int64_t> labels;
  int64_t max_index = 0;
  int64_t records = 0;
  Start start;  // of the chunk being counted
  std::string_view line;
  while (lines.next(line)) {
    if (!libsvm_record_text(line)) continue;
    if (records % chunk_rows == 0) {
      if (records > 0) add_chunk(start, chunk_rows);
      start = {lines.line_offset(), lines.line_number()};
    }
    rows.clear();
    parser.parse_line(line, lines.line_number(), rows);
    max_index = std::max(max_index, rows.max_index);
    const int64_t label = rows.labels[0];
    if (!given.empty()) {
      (void)class_of(file, given, label, lines.line_number());
    } else {
      labels.insert(label);
    }
    ++records;
  }
  if (records == 0) {
    throw FormatError(detail::concat(file, ": no records in ", lines.line_number(),
                                     " lines: expected lines of '<label> <index>:<value> ...'"));
  }
  add_chunk(start, records - (records - 1) / chunk_rows * chunk_rows);  // the last, maybe short
  if (inferred && max_index == 0) {
    throw FormatError(detail::concat(file,
                                     ": no record has a feature, so the feature count "
                                     "cannot be inferred; set LibsvmOptions::num_features"));
  }
  num_features_ = inferred ? max_index : options.num_features;
  set_sample_shape({num_features_});
  set_class_labels(given.empty() ? std::vector<int64_t>(labels.begin(), labels.end()) : given);
  chunk_ = std::make_unique<Chunk>(file, num_features_);
}

ChunkedLibsvmDataset::~ChunkedLibsvmDataset() = default;

std::unique_ptr<Dataset> ChunkedLibsvmDataset::another_reader() const {
  return std::unique_ptr<Dataset>(new ChunkedLibsvmDataset(*this));
}

ChunkedLibsvmDataset::ChunkedLibsvmDataset(const ChunkedLibsvmDataset& indexed)
    : ChunkedDataset(indexed),
      num_features_(indexed.num_features_),
      chunk_(std::make_unique<Chunk>(indexed.path(), indexed.num_features_)) {}

int64_t ChunkedLibsvmDataset::parse_chunk(const Start& start, int64_t rows) {
  SparseRows& parsed = chunk_->rows;
  parsed.clear();
  chunk_->lines.seek(start.offset, start.line);
  std::string_view line;
  while (static_cast<int64_t>(parsed.labels.size()) < rows && chunk_->lines.next(line)) {
    if (libsvm_record_text(line)) {
      chunk_->parser.parse_line(line, chunk_->lines.line_number(), parsed);
    }
  }
  for (size_t r = 0; r < parsed.labels.size(); ++r) {
    parsed.labels[r] = class_of(path(), class_labels(), parsed.labels[r], parsed.lines[r]);
  }
  return static_cast<int64_t>(parsed.labels.size());
}

int64_t ChunkedLibsvmDataset::read_row(int64_t row, std::span<float> out) const {
  const SparseRows& rows = chunk_->rows;
  const auto r = static_cast<size_t>(row);
  std::fill(out.begin(), out.end(), 0.0F);
  for (int64_t k = rows.row_starts[r]; k < rows.row_starts[r + 1]; ++k) {
    out[static_cast<size_t>(rows.indices[static_cast<size_t>(k)])] =
        rows.values[static_cast<size_t>(k)];
  }
  return rows.labels[r];
}

}  // namespace tessera::data
