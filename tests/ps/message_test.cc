#include "parallel/ps/message.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace tessera::parallel::ps {
namespace {

// An 8-byte aligned body made of the given pieces.
class Body {
 public:
  template <typename T>
  Body& add(const T& value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  std::span<const std::byte> span() {
    words_.assign((bytes_.size() + 7) / 8, 0);
    std::memcpy(words_.data(), bytes_.data(), bytes_.size());
    return {reinterpret_cast<const std::byte*>(words_.data()), bytes_.size()};
  }

 private:
  std::vector<std::byte> bytes_;
  std::vector<uint64_t> words_;
};

std::string error_of(const auto& decode) {
  try {
    decode();
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PsMessage, HeaderRoundTrips) {
  const Header h{.type = MessageType::kPushSparse,
                 .sender = 3,
                 .table = 7,
                 .clock = 42,
                 .request = 99,
                 .body_bytes = 1234};
  const Header back = decode_header(encode_header(h), true);
  EXPECT_EQ(back.type, h.type);
  EXPECT_EQ(back.sender, 3u);
  EXPECT_EQ(back.table, 7u);
  EXPECT_EQ(back.clock, 42);
  EXPECT_EQ(back.request, 99u);
  EXPECT_EQ(back.body_bytes, 1234u);
}

TEST(PsMessage, HeaderErrorsNameTheField) {
  HeaderBytes bytes = encode_header({.type = MessageType::kAck});
  bytes[0] = std::byte{'X'};
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("magic"), std::string::npos);

  bytes = encode_header({.type = MessageType::kAck});
  bytes[4] = std::byte{9};
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("protocol version 9"),
            std::string::npos);

  bytes = encode_header({.type = MessageType::kAck});
  bytes[6] = std::byte{77};
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("unknown message type 77"),
            std::string::npos);

  bytes = encode_header({.type = MessageType::kHello, .body_bytes = 4096});
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, false); }).find("before the handshake"),
            std::string::npos);
  EXPECT_EQ(decode_header(bytes, true).body_bytes, 4096u);

  bytes = encode_header({.type = MessageType::kPushDense, .body_bytes = kMaxBodyBytes + 1});
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("over the limit"),
            std::string::npos);

  bytes = encode_header({.type = MessageType::kPushDense, .clock = -1});
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("clock -1"),
            std::string::npos);
  bytes = encode_header({.type = MessageType::kPushDense, .clock = kMaxClock + 1});
  EXPECT_NE(error_of([&] { (void)decode_header(bytes, true); }).find("outside [0, 2^62]"),
            std::string::npos);
}

TEST(PsMessage, DensePushDecodesItsValues) {
  Body body;
  body.add(DensePrefix{.lr = 0.5f, .offset = 10, .count = 2}).add(1.5f).add(-2.0f);
  const DenseRequest r = decode_push_dense(body.span());
  EXPECT_EQ(r.lr, 0.5f);
  EXPECT_EQ(r.offset, 10);
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[1], -2.0f);
}

TEST(PsMessage, DenseBodiesThatDoNotAddUpAreRefused) {
  Body short_body;
  short_body.add(DensePrefix{.lr = 0.5f, .offset = 0, .count = 3}).add(1.0f);
  EXPECT_NE(error_of([&] { (void)decode_push_dense(short_body.span()); }).find("count 3"),
            std::string::npos);
  Body huge;
  huge.add(DensePrefix{.lr = 0.5f, .offset = 0, .count = int64_t{1} << 62});
  EXPECT_NE(error_of([&] { (void)decode_push_dense(huge.span()); }).find("need more than"),
            std::string::npos);
  Body negative;
  negative.add(int64_t{-1}).add(int64_t{4});
  EXPECT_NE(error_of([&] { (void)decode_pull_dense(negative.span()); }).find("must be >= 0"),
            std::string::npos);
  Body nan_lr;
  nan_lr.add(DensePrefix{.lr = std::nanf(""), .offset = 0, .count = 0});
  EXPECT_NE(error_of([&] { (void)decode_push_dense(nan_lr.span()); }).find("learning rate"),
            std::string::npos);
  Body truncated;
  truncated.add(int64_t{0});
  EXPECT_NE(error_of([&] { (void)decode_pull_dense(truncated.span()); }).find("prefix"),
            std::string::npos);
}

TEST(PsMessage, SparseBodiesCarryKeysThenRows) {
  Body body;
  body.add(SparsePrefix{.lr = 0.1f, .n = 2}).add(uint64_t{5}).add(uint64_t{1} << 40);
  for (int i = 0; i < 6; ++i) body.add(static_cast<float>(i));
  const SparseRequest r = decode_push_sparse(body.span(), 3);
  ASSERT_EQ(r.keys.size(), 2u);
  EXPECT_EQ(r.keys[1], uint64_t{1} << 40);
  ASSERT_EQ(r.values.size(), 6u);
  EXPECT_EQ(r.values[5], 5.0f);
  // The same bytes read with another dim do not fit.
  EXPECT_NE(error_of([&] { (void)decode_push_sparse(body.span(), 4); }).find("keys 2"),
            std::string::npos);

  Body pull;
  pull.add(uint64_t{3}).add(uint64_t{1}).add(uint64_t{2});
  EXPECT_NE(error_of([&] { (void)decode_pull_sparse(pull.span()); }).find("keys 3"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::parallel::ps
