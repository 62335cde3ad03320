#include "tessera/data/libsvm_stream.h"

#include <limits>
#include <string>

#include "libsvm_parser.h"
#include "line_reader.h"

namespace tessera::data {

struct LibsvmStream::Impl {
  explicit Impl(const std::filesystem::path& path)
      : lines(path), parser(lines.path(), std::numeric_limits<int64_t>::max(), false) {}

  // The next line that holds a record, comment cut; false at the end.
  bool next_record_text(std::string_view& line) {
    while (lines.next(line)) {
      if (libsvm_record_text(line)) {
        ++records_count;
        return true;
      }
    }
    return false;
  }

  LineReader lines;
  LibsvmParser parser;
  SparseRows rows;
  int64_t records_count = 0;
};

LibsvmStream::LibsvmStream(const std::filesystem::path& path)
    : impl_(std::make_unique<Impl>(path)) {}

LibsvmStream::~LibsvmStream() = default;

bool LibsvmStream::next() {
  std::string_view line;
  if (!impl_->next_record_text(line)) return false;
  impl_->rows.clear();
  impl_->parser.parse_line(line, impl_->lines.line_number(), impl_->rows);
  return true;
}

bool LibsvmStream::skip() {
  std::string_view line;
  return impl_->next_record_text(line);
}

void LibsvmStream::rewind() {
  impl_->lines.seek(0, 1);
  impl_->rows.clear();
  impl_->records_count = 0;
}

int64_t LibsvmStream::label() const { return impl_->rows.labels.at(0); }
int64_t LibsvmStream::line() const { return impl_->rows.lines.at(0); }
std::span<const int64_t> LibsvmStream::indices() const { return impl_->rows.indices; }
std::span<const float> LibsvmStream::values() const { return impl_->rows.values; }
int64_t LibsvmStream::records() const { return impl_->records_count; }
const std::string& LibsvmStream::path() const { return impl_->lines.path(); }

}  // namespace tessera::data
