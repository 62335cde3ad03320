#include "tessera/data/idx_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace {

using testing::idx_bytes;
using testing::ramp;
using testing::TempDir;

TEST(IdxFile, ReadsPlainUint8Images) {
  TempDir dir;
  const auto path = dir.write("images-idx3-ubyte", idx_bytes(0x08, {2, 3, 4}, ramp(24, 10)));
  const IdxFile file = IdxFile::read(path);
  EXPECT_EQ(file.type(), IdxType::kUInt8);
  EXPECT_EQ(file.dims(), (Shape{2, 3, 4}));
  EXPECT_EQ(file.header().data_offset, 16);
  const Tensor raw = file.to_float32();
  ASSERT_EQ(raw.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(raw.at({0, 0, 0}), 10.0);
  EXPECT_EQ(raw.at({1, 2, 3}), 33.0);
  const Tensor scaled = file.to_float32(1.0f / 255.0f, -0.5f);
  EXPECT_FLOAT_EQ(static_cast<float>(scaled.at({1, 0, 0})), 22.0f / 255.0f - 0.5f);
}

TEST(IdxFile, ReadsGzipCompressedLabelsLikeThePlainFile) {
  TempDir dir;
  const auto bytes = idx_bytes(0x08, {5}, {9, 0, 3, 3, 7});
  const IdxFile plain = IdxFile::read(dir.write("labels", bytes));
  const IdxFile gz = IdxFile::read(dir.write_gz("labels.gz", bytes));
  EXPECT_EQ(gz.to_int64().to_vector<int64_t>(), (std::vector<int64_t>{9, 0, 3, 3, 7}));
  EXPECT_EQ(plain.to_int64().to_vector<int64_t>(), gz.to_int64().to_vector<int64_t>());
}

TEST(IdxFile, ConvertsBigEndianMultiByteTypes) {
  TempDir dir;
  // int16 -2 and 258; int32 -70000; float32 1.5; float64 -0.25.
  const IdxFile i16 =
      IdxFile::read(dir.write("i16", idx_bytes(0x0B, {2}, {0xFF, 0xFE, 0x01, 0x02})));
  EXPECT_EQ(i16.to_int64().to_vector<int64_t>(), (std::vector<int64_t>{-2, 258}));
  const IdxFile i32 =
      IdxFile::read(dir.write("i32", idx_bytes(0x0C, {1}, {0xFF, 0xFE, 0xEE, 0x90})));
  EXPECT_EQ(i32.to_int64().to_vector<int64_t>(), (std::vector<int64_t>{-70000}));
  const IdxFile f32 =
      IdxFile::read(dir.write("f32", idx_bytes(0x0D, {1}, {0x3F, 0xC0, 0x00, 0x00})));
  EXPECT_EQ(f32.to_float32().to_vector<float>(), (std::vector<float>{1.5f}));
  const IdxFile f64 =
      IdxFile::read(dir.write("f64", idx_bytes(0x0E, {1}, {0xBF, 0xD0, 0, 0, 0, 0, 0, 0})));
  EXPECT_EQ(f64.to_float32().to_vector<float>(), (std::vector<float>{-0.25f}));
  const IdxFile i8 = IdxFile::read(dir.write("i8", idx_bytes(0x09, {1}, {0x80})));
  EXPECT_EQ(i8.to_int64().to_vector<int64_t>(), (std::vector<int64_t>{-128}));
}

TEST(IdxFile, TruncatedDataNamesFileAndOffset) {
  TempDir dir;
  // Header 16 bytes, then 14 of the 24 data bytes.
  const auto path = dir.write("short-idx3-ubyte", idx_bytes(0x08, {2, 3, 4}, ramp(14)));
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "truncated", "byte offset 30",
                    "40 bytes");
}

TEST(IdxFile, TruncatedGzipNamesFileAndDecompressedOffset) {
  TempDir dir;
  // 4000 data bytes, gzipped, cut to half its compressed length.
  const auto full = dir.write_gz("full.gz", idx_bytes(0x08, {4000}, ramp(4000)));
  std::vector<uint8_t> compressed(std::filesystem::file_size(full));
  {
    std::ifstream in(full, std::ios::binary);
    in.read(reinterpret_cast<char*>(compressed.data()),
            static_cast<std::streamsize>(compressed.size()));
  }
  compressed.resize(compressed.size() / 2);
  const auto path = dir.write("cut.gz", compressed);
  const std::string message =
      testing::thrown_message<FormatError>([&] { (void)IdxFile::read(path); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("byte offset"), std::string::npos) << message;
  EXPECT_NE(message.find("decompressed"), std::string::npos) << message;
}

TEST(IdxFile, TruncatedHeaderNamesOffset) {
  TempDir dir;
  const auto path = dir.write("head", std::vector<uint8_t>{0, 0, 0x08, 3, 0, 0, 0, 2});
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "truncated at byte offset 8",
                    "3 dimension sizes");
  const auto tiny = dir.write("tiny", std::vector<uint8_t>{0, 0});
  EXPECT_THROW_WITH(IdxFile::read(tiny), FormatError, tiny.string(), "byte offset 2",
                    "magic number");
}

TEST(IdxFile, BadMagicNumberNamesFileAndOffset) {
  TempDir dir;
  auto bytes = idx_bytes(0x08, {2}, {1, 2});
  bytes[0] = 0x12;
  bytes[1] = 0x34;
  const auto path = dir.write("bad-magic", bytes);
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "byte offset 0",
                    "magic number 0x12340801", "two zero bytes");
}

TEST(IdxFile, UnknownTypeCodeNamesFileAndOffset) {
  TempDir dir;
  const auto path = dir.write("bad-type", idx_bytes(0x07, {2}, {1, 2}));
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "byte offset 2",
                    "type code 0x07", "0x08 (uint8)");
}

TEST(IdxFile, ZeroDimensionsIsAFormatError) {
  TempDir dir;
  const auto path = dir.write("no-dims", std::vector<uint8_t>{0, 0, 0x08, 0});
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "byte offset 3",
                    "dimension count 0");
}

TEST(IdxFile, TrailingBytesAreADimsSizeMismatch) {
  TempDir dir;
  const auto path = dir.write("long", idx_bytes(0x08, {2, 2}, ramp(5)));
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "byte offset 16",
                    "expected end of file", "[2,2]", "do not match");
  const auto gz = dir.write_gz("long.gz", idx_bytes(0x08, {2, 2}, ramp(5)));
  EXPECT_THROW_WITH(IdxFile::read(gz), FormatError, gz.string(), "byte offset 16", "decompressed",
                    "expected end of file");
}

TEST(IdxFile, HugeDimsInATinyGzipFileDoNotAllocate) {
  TempDir dir;
  // Claims 4 GiB of data in a few bytes.
  const auto path = dir.write_gz("huge.gz", idx_bytes(0x08, {65536, 65536}, ramp(10)));
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "truncated at byte offset 22",
                    "decompressed");
}

TEST(IdxFile, EmptyFileIsAClearFormatError) {
  TempDir dir;
  const auto path = dir.write("empty", std::string());
  EXPECT_THROW_WITH(IdxFile::read(path), FormatError, path.string(), "empty file", "byte offset 0");
  const auto gz = dir.write_gz("empty.gz", {});
  EXPECT_THROW_WITH(IdxFile::read(gz), FormatError, gz.string(), "empty file");
}

TEST(IdxFile, MissingFileIsAValueError) {
  TempDir dir;
  EXPECT_THROW_WITH(IdxFile::read(dir / "nope"), ValueError, (dir / "nope").string(),
                    "cannot open");
}

TEST(IdxFile, FloatElementsAreNotLabels) {
  TempDir dir;
  const IdxFile file =
      IdxFile::read(dir.write("f32", idx_bytes(0x0D, {1}, {0x3F, 0xC0, 0x00, 0x00})));
  EXPECT_THROW_WITH((void)file.to_int64(), DTypeError, "f32", "float32");
}

}  // namespace
}  // namespace tessera::data
