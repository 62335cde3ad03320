#include "tessera/core/serialize.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/core/error.h"
#include "testing/text.h"

namespace tessera {
namespace {

using tessera::testing::contains;

TEST(Serialize, RoundTripsEveryKindOfValue) {
  std::stringstream buffer;
  BinaryWriter w(buffer);
  w.write_u32(0xDEADBEEFu);
  w.write_u64(0x0123456789ABCDEFull);
  w.write_i64(-42);
  w.write_f64(-0.1);
  w.write_f64(std::numeric_limits<double>::infinity());
  w.write_string("");
  w.write_string(std::string("with\0nul", 8));
  std::vector<std::byte> bytes{std::byte{1}, std::byte{0}, std::byte{255}};
  w.write_bytes(bytes);

  BinaryReader r(buffer, "buffer");
  EXPECT_EQ(r.read_u32(), 0xDEADBEEFu);
  EXPECT_EQ(r.read_u64(), 0x0123456789ABCDEFull);
  EXPECT_EQ(r.read_i64(), -42);
  EXPECT_EQ(r.read_f64(), -0.1);
  EXPECT_EQ(r.read_f64(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(r.read_string(), "");
  EXPECT_EQ(r.read_string(), std::string("with\0nul", 8));
  std::vector<std::byte> back(3);
  r.read_bytes(back);
  EXPECT_EQ(back, bytes);
  EXPECT_EQ(r.offset(), 4u + 8 + 8 + 8 + 8 + 8 + 16 + 3);
}

TEST(Serialize, WritesLittleEndian) {
  std::stringstream buffer;
  BinaryWriter(buffer).write_u32(0x01020304u);
  EXPECT_EQ(buffer.str(), std::string("\x04\x03\x02\x01", 4));
}

TEST(Serialize, TruncatedReadThrowsFormatErrorNamingSourceAndOffset) {
  std::stringstream full;
  BinaryWriter w(full);
  w.write_u32(7);
  w.write_u64(9);
  std::string data = full.str().substr(0, 7);  // the u64 is cut after 3 of its 8 bytes
  std::istringstream in(data);
  BinaryReader r(in, "model.ckpt");
  EXPECT_EQ(r.read_u32(), 7u);
  try {
    (void)r.read_u64();
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_TRUE(contains(e.what(), "model.ckpt")) << e.what();
    EXPECT_TRUE(contains(e.what(), "byte 7")) << e.what();
  }
}

TEST(Serialize, EveryTruncationOfAStreamThrowsFormatError) {
  std::stringstream full;
  BinaryWriter w(full);
  w.write_string("hello");
  w.write_f64(1.5);
  const std::string data = full.str();
  for (size_t len = 0; len < data.size(); ++len) {
    std::istringstream in(data.substr(0, len));
    BinaryReader r(in, "cut");
    EXPECT_THROW(
        {
          (void)r.read_string();
          (void)r.read_f64();
        },
        FormatError)
        << "length " << len;
  }
}

TEST(Serialize, RefusesAStringLongerThanItsLimitWithoutAllocatingIt) {
  std::stringstream buffer;
  BinaryWriter(buffer).write_u64(uint64_t{1} << 60);  // a corrupt length
  BinaryReader r(buffer, "corrupt");
  try {
    (void)r.read_string();
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_TRUE(contains(e.what(), "corrupt")) << e.what();
    EXPECT_TRUE(contains(e.what(), "byte 0")) << e.what();
  }
  std::stringstream small;
  BinaryWriter(small).write_string("abcdef");
  BinaryReader r2(small, "small");
  EXPECT_THROW((void)r2.read_string(5), FormatError);
}

// A stream that can only be read forward, as a pipe or socket.
class ForwardOnlyBuffer : public std::streambuf {
 public:
  explicit ForwardOnlyBuffer(std::string data) : data_(std::move(data)) {
    setg(data_.data(), data_.data(), data_.data() + data_.size());
  }

 private:
  std::string data_;
};

TEST(Serialize, RemainingCountsTheBytesLeftWhenTheStreamCanTell) {
  std::stringstream buffer;
  BinaryWriter w(buffer);
  w.write_u64(1);
  w.write_u32(2);
  BinaryReader r(buffer, "buffer");
  EXPECT_EQ(r.remaining(), 12u);
  (void)r.read_u64();
  EXPECT_EQ(r.remaining(), 4u);
  EXPECT_EQ(r.read_u32(), 2u);  // asking did not move the read position
  EXPECT_EQ(r.remaining(), 0u);

  ForwardOnlyBuffer pipe(std::string(8, '\0'));
  std::istream in(&pipe);
  BinaryReader forward(in, "pipe");
  EXPECT_FALSE(forward.remaining().has_value());
  EXPECT_EQ(forward.read_u64(), 0u);  // and the stream still reads
}

TEST(Serialize, WriterThrowsFormatErrorWhenTheStreamFails) {
  std::stringstream buffer;
  buffer.setstate(std::ios::badbit);
  BinaryWriter w(buffer);
  EXPECT_THROW(w.write_u32(1), FormatError);
}

}  // namespace
}  // namespace tessera
