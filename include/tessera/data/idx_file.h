#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tessera/tensor/shape.h"
#include "tessera/tensor/tensor.h"

namespace tessera::data {

// Element type codes of the IDX format (the third byte of the magic number). Multi-byte values
// are big-endian in the file.
enum class IdxType : uint8_t {
  kUInt8 = 0x08,
  kInt8 = 0x09,
  kInt16 = 0x0B,
  kInt32 = 0x0C,
  kFloat32 = 0x0D,
  kFloat64 = 0x0E,
};

[[nodiscard]] const char* idx_type_name(IdxType type);
[[nodiscard]] int64_t idx_type_size(IdxType type);

// The parsed header of an IDX file: magic 0x00 0x00 <type> <ndims>, then ndims big-endian
// uint32 sizes, then the elements in row-major order.
struct IdxHeader {
  IdxType type = IdxType::kUInt8;
  Shape dims;
  // Byte offset of the first element: 4 + 4 * ndims.
  int64_t data_offset = 0;

  [[nodiscard]] int64_t numel() const { return shape_numel(dims); }
  [[nodiscard]] int64_t data_bytes() const { return numel() * idx_type_size(type); }
};

// An IDX file (the MNIST / Fashion-MNIST format) read whole into memory, plain or gzip-compressed
// (recognised by its content, not its name).
//
// read() validates everything before returning: the magic number's two zero bytes, the type
// code, the dimension count, and that the data is exactly as long as the dimensions say. Each
// failure is a FormatError naming the file, the byte offset and what was expected; for a .gz file
// offsets count bytes of the decompressed data. An empty file is a FormatError too.
// Not thread-safe to mutate; const methods may run concurrently.
class IdxFile {
 public:
  [[nodiscard]] static IdxFile read(const std::filesystem::path& path);
  // Parses and validates the header at the start of `bytes` (the file's first bytes, at least
  // the whole header: 4 + 4 * ndims). Throws FormatError naming `path` and the byte offset on a
  // bad magic number, an unknown type code, zero dimensions or too few bytes. Does not check the
  // data's length (the caller knows the file's size).
  [[nodiscard]] static IdxHeader parse_header(std::span<const uint8_t> bytes,
                                              const std::string& path);

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] const IdxHeader& header() const { return header_; }
  [[nodiscard]] IdxType type() const { return header_.type; }
  [[nodiscard]] const Shape& dims() const { return header_.dims; }
  // The elements as stored: big-endian, header_.data_bytes() bytes.
  [[nodiscard]] std::span<const uint8_t> raw() const { return data_; }
  // Moves the elements out (leaving this file empty): keeps big data sets in one copy.
  [[nodiscard]] std::vector<uint8_t> take_raw() && { return std::move(data_); }

  // float32 tensor of dims(): value * scale + shift for every element (for 8-bit images,
  // scale 1/255 maps to [0, 1]).
  [[nodiscard]] Tensor to_float32(float scale = 1.0f, float shift = 0.0f) const;
  // int64 tensor of dims() (labels). Throws DTypeError naming the file for float element types.
  [[nodiscard]] Tensor to_int64() const;

 private:
  IdxFile(std::filesystem::path path, IdxHeader header, std::vector<uint8_t> data)
      : path_(std::move(path)), header_(std::move(header)), data_(std::move(data)) {}

  std::filesystem::path path_;
  IdxHeader header_;
  std::vector<uint8_t> data_;
};

}  // namespace tessera::data
