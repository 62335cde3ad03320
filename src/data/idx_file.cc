#include "tessera/data/idx_file.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <system_error>

#include "idx_detail.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tessera/tensor/dtype.h"

namespace tessera::data {

namespace {

static_assert(std::endian::native == std::endian::little, "IDX conversion assumes little-endian");

constexpr int64_t kMaxHeaderBytes = 4 + 4 * 255;
// gzread takes an unsigned int length; read in pieces well below that.
constexpr int64_t kGzipPiece = int64_t{1} << 26;

template <typename T>
T load_big_endian(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  if constexpr (sizeof(T) == 2) {
    return std::bit_cast<T>(__builtin_bswap16(std::bit_cast<uint16_t>(value)));
  } else if constexpr (sizeof(T) == 4) {
    return std::bit_cast<T>(__builtin_bswap32(std::bit_cast<uint32_t>(value)));
  } else if constexpr (sizeof(T) == 8) {
    return std::bit_cast<T>(__builtin_bswap64(std::bit_cast<uint64_t>(value)));
  } else {
    return value;
  }
}

template <typename T>
void convert_to_float(const uint8_t* src, float* dst, int64_t n, float multiplier, float offset) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = static_cast<float>(load_big_endian<T>(src + i * sizeof(T))) * multiplier + offset;
  }
}

template <typename T>
void convert_to_int64(const uint8_t* src, int64_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_big_endian<T>(src + i * sizeof(T));
}

std::string hex(uint64_t value, int digits) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%0*llX", digits, static_cast<unsigned long long>(value));
  return buf;
}

std::string describe(const IdxHeader& header) {
  return detail::concat("dims ", shape_str(header.dims), " of ", idx_type_name(header.type));
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; fewer only at end of file. Throws FormatError on corrupt gzip data.
int64_t read_fully(gzFile f, uint8_t* dst, int64_t n, int64_t offset, const std::string& path) {
  int64_t total = 0;
  while (total < n) {
    const auto piece = static_cast<unsigned>(std::min(n - total, kGzipPiece));
    int got = gzread(f, dst + total, piece);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(f, &code);
      throw FormatError(detail::concat(path, ": corrupt gzip data after byte offset ",
                                       offset + total, " of the decompressed data: ", message));
    }
    if (got == 0) {
      // zlib reports a stream cut short as Z_BUF_ERROR with no bytes; that is a truncation.
      int code = 0;
      gzerror(f, &code);
      if (code != Z_OK && code != Z_BUF_ERROR) {
        throw FormatError(detail::concat(path, ": corrupt gzip data after byte offset ",
                                         offset + total, " of the decompressed data"));
      }
      break;
    }
    total += got;
  }
  return total;
}

}  // namespace

void check_idx_size(const IdxHeader& header, int64_t available, bool gz, const std::string& path) {
  const int64_t expected_end = header.data_offset + header.data_bytes();
  const char* unit = gz ? " of the decompressed data" : "";
  if (available < expected_end) {
    throw FormatError(detail::concat(
        path, ": truncated at byte offset ", available, unit, ": the header's ", describe(header),
        " need ", header.data_bytes(), " data bytes from byte offset ", header.data_offset,
        ", so the file should be ", expected_end, " bytes long"));
  }
  if (available > expected_end) {
    throw FormatError(detail::concat(path, ": byte offset ", expected_end, unit,
                                     ": expected end of file after the ", header.data_bytes(),
                                     " data bytes that the header's ", describe(header),
                                     " describe, but the file is longer (", gz ? "at least " : "",
                                     available, " bytes): the dims do not match the file size"));
  }
}

const char* idx_type_name(IdxType type) {
  switch (type) {
    case IdxType::kUInt8:
      return "uint8";
    case IdxType::kInt8:
      return "int8";
    case IdxType::kInt16:
      return "int16";
    case IdxType::kInt32:
      return "int32";
    case IdxType::kFloat32:
      return "float32";
    case IdxType::kFloat64:
      return "float64";
  }
  return "unknown";
}

int64_t idx_type_size(IdxType type) {
  switch (type) {
    case IdxType::kUInt8:
    case IdxType::kInt8:
      return 1;
    case IdxType::kInt16:
      return 2;
    case IdxType::kInt32:
    case IdxType::kFloat32:
      return 4;
    case IdxType::kFloat64:
      return 8;
  }
  return 1;
}

void idx_to_float(IdxType type, const uint8_t* src, float* dst, int64_t n, float multiplier,
                  float offset) {
  switch (type) {
    case IdxType::kUInt8:
      return convert_to_float<uint8_t>(src, dst, n, multiplier, offset);
    case IdxType::kInt8:
      return convert_to_float<int8_t>(src, dst, n, multiplier, offset);
    case IdxType::kInt16:
      return convert_to_float<int16_t>(src, dst, n, multiplier, offset);
    case IdxType::kInt32:
      return convert_to_float<int32_t>(src, dst, n, multiplier, offset);
    case IdxType::kFloat32:
      return convert_to_float<float>(src, dst, n, multiplier, offset);
    case IdxType::kFloat64:
      return convert_to_float<double>(src, dst, n, multiplier, offset);
  }
}

void idx_to_int64(IdxType type, const uint8_t* src, int64_t* dst, int64_t n) {
  switch (type) {
    case IdxType::kUInt8:
      return convert_to_int64<uint8_t>(src, dst, n);
    case IdxType::kInt8:
      return convert_to_int64<int8_t>(src, dst, n);
    case IdxType::kInt16:
      return convert_to_int64<int16_t>(src, dst, n);
    case IdxType::kInt32:
      return convert_to_int64<int32_t>(src, dst, n);
    case IdxType::kFloat32:
    case IdxType::kFloat64:
      break;
  }
  throw InternalError("idx_to_int64: float element type");
}

IdxHeader IdxFile::parse_header(std::span<const uint8_t> bytes, const std::string& path) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size == 0) {
    throw FormatError(path +
                      ": empty file: expected an IDX header (a 4-byte magic number) at "
                      "byte offset 0");
  }
  if (size < 4) {
    throw FormatError(detail::concat(path, ": truncated at byte offset ", size,
                                     ": expected a 4-byte IDX magic number at byte offset 0"));
  }
  const uint32_t magic = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                         (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  if (bytes[0] != 0 || bytes[1] != 0) {
    throw FormatError(detail::concat(
        path, ": byte offset 0: bad IDX magic number ", hex(magic, 8),
        ": expected 0x0000TTDD (two zero bytes, a type code TT, a dimension count DD)",
        bytes[0] == 0x1f && bytes[1] == 0x8b ? " (this is gzip data that did not decompress)"
                                             : ""));
  }
  const uint8_t code = bytes[2];
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      break;
    default:
      throw FormatError(detail::concat(
          path, ": byte offset 2: unknown IDX type code ", hex(code, 2), " in magic number ",
          hex(magic, 8),
          ": expected 0x08 (uint8), 0x09 (int8), 0x0B (int16), 0x0C (int32), 0x0D (float32) "
          "or 0x0E (float64)"));
  }
  const int ndims = bytes[3];
  if (ndims == 0) {
    throw FormatError(path + ": byte offset 3: dimension count 0: expected at least 1");
  }
  IdxHeader header;
  header.type = static_cast<IdxType>(code);
  header.data_offset = 4 + 4 * int64_t{ndims};
  if (size < header.data_offset) {
    throw FormatError(detail::concat(path, ": truncated at byte offset ", size, ": expected ",
                                     ndims, " dimension sizes of 4 bytes each up to byte offset ",
                                     header.data_offset));
  }
  // Limit the product so that numel * element size fits in int64 with room to spare.
  constexpr int64_t kMaxBytes = int64_t{1} << 56;
  int64_t bytes_so_far = idx_type_size(header.type);
  for (int i = 0; i < ndims; ++i) {
    const uint8_t* p = bytes.data() + 4 + 4 * i;
    const int64_t dim =
        (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | int64_t{p[3]};
    header.dims.push_back(dim);
    if (dim != 0 && bytes_so_far > kMaxBytes / dim) {
      throw FormatError(detail::concat(path, ": byte offset ", 4 + 4 * i, ": dimension ", i, " (",
                                       dim, ") makes the data larger than 2^56 bytes"));
    }
    bytes_so_far *= dim;
  }
  return header;
}

IdxFile IdxFile::read(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    throw ValueError(
        detail::concat(name, ": cannot open: ", ec ? ec.message() : "not a regular file"));
  }
  GzHandle file(gzopen(name.c_str(), "rb"));
  if (!file) {
    throw ValueError(detail::concat(name, ": cannot open: ", std::strerror(errno)));
  }
  gzbuffer(file.get(), 1 << 18);

  std::vector<uint8_t> head(kMaxHeaderBytes);
  int64_t got = read_fully(file.get(), head.data(), 4, 0, name);
  if (got == 4 && head[0] == 0 && head[1] == 0 && head[3] > 0) {
    got += read_fully(file.get(), head.data() + 4, 4 * int64_t{head[3]}, 4, name);
  }
  const bool gz = gzdirect(file.get()) == 0;
  IdxHeader header = parse_header(std::span(head.data(), static_cast<size_t>(got)), name);

  const int64_t data_bytes = header.data_bytes();
  std::vector<uint8_t> data;
  if (!gz) {
    // The size is known: reject a mismatch before allocating what the dims claim.
    check_idx_size(header, static_cast<int64_t>(std::filesystem::file_size(path)), false, name);
    data.resize(static_cast<size_t>(data_bytes));
    got = read_fully(file.get(), data.data(), data_bytes, header.data_offset, name);
    check_idx_size(header, header.data_offset + got, false, name);
  } else {
    // Grow as the data arrives, so a header that claims a huge size cannot allocate it up front.
    int64_t total = 0;
    while (total < data_bytes) {
      const int64_t want = std::min(data_bytes - total, std::max<int64_t>(total, kGzipPiece));
      data.resize(static_cast<size_t>(total + want));
      const int64_t n =
          read_fully(file.get(), data.data() + total, want, header.data_offset + total, name);
      total += n;
      if (n < want) break;
    }
    if (total < data_bytes) check_idx_size(header, header.data_offset + total, true, name);
    uint8_t extra[4096];
    const int64_t trailing =
        read_fully(file.get(), extra, sizeof(extra), header.data_offset + total, name);
    if (trailing > 0) {
      check_idx_size(header, header.data_offset + total + trailing, true, name);
    }
  }
  return IdxFile(path, std::move(header), std::move(data));
}

Tensor IdxFile::to_float32(float scale, float shift) const {
  Tensor out = Tensor::empty(header_.dims, DType::kFloat32);
  float* dst = out.data<float>();
  const int64_t size = idx_type_size(header_.type);
  // In parallel: most of the time goes to first-touch page faults on the new tensor, which
  // scale with threads.
  parallel_for(header_.numel(), int64_t{1} << 18, [&](int64_t begin, int64_t end) {
    idx_to_float(header_.type, data_.data() + begin * size, dst + begin, end - begin, scale, shift);
  });
  return out;
}

Tensor IdxFile::to_int64() const {
  if (header_.type == IdxType::kFloat32 || header_.type == IdxType::kFloat64) {
    throw DTypeError(detail::concat(path_.string(), ": IdxFile::to_int64: elements are ",
                                    idx_type_name(header_.type), ", expected an integer type"));
  }
  Tensor out = Tensor::empty(header_.dims, DType::kInt64);
  idx_to_int64(header_.type, data_.data(), out.data<int64_t>(), header_.numel());
  return out;
}

}  // namespace tessera::data
