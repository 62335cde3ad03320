#include "line_reader.h"

#include <cerrno>
#include <cstring>

#include "tessera/core/error.h"

namespace tessera::data {

namespace {

constexpr size_t kInitialBuffer = size_t{1} << 20;

}  // namespace

LineReader::LineReader(const std::filesystem::path& path)
    : path_(path.string()), buffer_(kInitialBuffer) {
  file_ = std::fopen(path_.c_str(), "rb");
  if (file_ == nullptr) {
    throw ValueError(detail::concat(path_, ": cannot open: ", std::strerror(errno)));
  }
}

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool LineReader::refill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // A line longer than the buffer: grow it rather than split the line.
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_);
  if (got == 0) {
    if (std::ferror(file_)) {
      throw Error(detail::concat(path_, ": read error at byte offset ", offset_ + (end_ - begin_),
                                 ": ", std::strerror(errno)));
    }
    eof_ = true;
    return false;
  }
  end_ += got;
  return true;
}

bool LineReader::next(std::string_view& line) {
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const void* newline = std::memchr(start + scanned_, '\n', end_ - begin_ - scanned_);
    size_t length = 0;
    size_t consumed = 0;
    if (newline != nullptr) {
      length = static_cast<size_t>(static_cast<const char*>(newline) - start);
      consumed = length + 1;
    } else {
      scanned_ = end_ - begin_;
      if (refill()) continue;
      if (begin_ == end_) return false;
      // The last line has no '\n'.
      length = end_ - begin_;
      consumed = length;
      start = buffer_.data() + begin_;
    }
    line = std::string_view(start, length);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_offset_ = offset_;
    ++line_number_;
    begin_ += consumed;
    offset_ += static_cast<int64_t>(consumed);
    scanned_ = 0;
    return true;
  }
}

void LineReader::seek(int64_t offset, int64_t line_number) {
  if (fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0) {
    throw Error(
        detail::concat(path_, ": cannot seek to byte offset ", offset, ": ", std::strerror(errno)));
  }
  std::clearerr(file_);
  begin_ = end_ = scanned_ = 0;
  eof_ = false;
  offset_ = offset;
  line_number_ = line_number - 1;
  line_offset_ = offset;
}

}  // namespace tessera::data
