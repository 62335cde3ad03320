#include "tessera/tensor/tensor_io.h"

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_equal;

std::string serialized(const std::vector<Tensor>& tensors) {
  std::ostringstream out;
  BinaryWriter w(out);
  for (const Tensor& t : tensors) write_tensor(w, t);
  return out.str();
}

Tensor read_one(const std::string& bytes, const std::string& source = "test.bin") {
  std::istringstream in(bytes);
  BinaryReader r(in, source);
  return read_tensor(r);
}

// Bytes of a header: dtype code, rank, dims.
std::string header(uint32_t code, const std::vector<int64_t>& dims) {
  std::ostringstream out;
  BinaryWriter w(out);
  w.write_u32(code);
  w.write_u32(static_cast<uint32_t>(dims.size()));
  for (int64_t d : dims) w.write_i64(d);
  return out.str();
}

TEST(TensorIo, RoundTripsEveryDtypeAndShape) {
  Generator gen(1);
  std::vector<Tensor> tensors = {
      Tensor::randn({2, 3}, gen),
      Tensor::randn({4}, gen, DType::kFloat64),
      Tensor::from_vector<int32_t>({-1, 7, 1 << 30}, {3}),
      Tensor::from_vector<int64_t>({-5, int64_t{1} << 50}, {2, 1}),
      Tensor::randn({3, 2}, gen).to(DType::kBFloat16),
      Tensor::randn({5}, gen).to(DType::kFloat16),
      Tensor::scalar(3.25, DType::kFloat64),
      Tensor::zeros({0, 4}),
  };
  std::string bytes = serialized(tensors);
  std::istringstream in(bytes);
  BinaryReader r(in, "all");
  for (const Tensor& t : tensors) {
    Tensor back = read_tensor(r);
    EXPECT_TRUE(tensors_equal(back, t)) << t.to_string();
  }
  EXPECT_EQ(r.offset(), bytes.size());
}

TEST(TensorIo, WritesViewsAsTheirLogicalContents) {
  Tensor base = Tensor::arange(12, DType::kFloat64).reshape({3, 4});
  Tensor view = base.t().slice(0, 1, 4, 2);  // [2, 3], strided and transposed
  Tensor back = read_one(serialized({view}));
  EXPECT_TRUE(tensors_equal(back, view.contiguous()));
  EXPECT_TRUE(back.is_contiguous());
}

TEST(TensorIo, EveryTruncationThrowsFormatErrorNamingSourceAndOffset) {
  std::string bytes = serialized({Tensor::arange(6, DType::kFloat32).reshape({2, 3})});
  for (size_t len = 0; len < bytes.size(); ++len) {
    try {
      (void)read_one(bytes.substr(0, len), "weights.bin");
      ADD_FAILURE() << "no exception at length " << len;
    } catch (const FormatError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("weights.bin"), std::string::npos) << what;
      EXPECT_NE(what.find("truncated at byte " + std::to_string(len)), std::string::npos) << what;
    }
  }
}

TEST(TensorIo, CorruptHeadersThrowFormatErrorNamingTheOffset) {
  // The second tensor of a stream is corrupt: the error gives the byte where it starts.
  std::string good = serialized({Tensor::zeros({2})});
  auto expect_format_error = [&](const std::string& bad, const std::string& what_part) {
    try {
      std::istringstream in(good + bad);
      BinaryReader r(in, "ckpt");
      (void)read_tensor(r);
      (void)read_tensor(r);
      ADD_FAILURE() << "no exception for " << what_part;
    } catch (const FormatError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("ckpt"), std::string::npos) << what;
      EXPECT_NE(what.find("byte " + std::to_string(good.size())), std::string::npos) << what;
      EXPECT_NE(what.find(what_part), std::string::npos) << what;
    }
  };
  expect_format_error(header(99, {2}), "dtype");
  expect_format_error(header(0, std::vector<int64_t>(17, 1)), "rank");
  expect_format_error(header(0, {3, -2}), "dimension");
  expect_format_error(header(0, {int64_t{1} << 41}), "dimension");
  // Each dimension is plausible, their product is not (and overflows int64).
  expect_format_error(header(0, {int64_t{1} << 40, int64_t{1} << 40}), "large");
  expect_format_error(header(0, std::vector<int64_t>(16, 1 << 16)), "large");
  // Plausible shape, but the data is not there: refused before allocating 4 TiB for it.
  expect_format_error(header(0, {int64_t{1} << 40}), "truncated");
  expect_format_error(header(1, {1000, 1000}) + std::string(64, '\0'), "truncated");
}

TEST(TensorIo, AcceptsAnEmptyTensorWhateverItsOtherDimensions) {
  Tensor back = read_one(header(0, {0, int64_t{1} << 40}));
  EXPECT_EQ(back.shape(), (Shape{0, int64_t{1} << 40}));
  EXPECT_EQ(back.numel(), 0);
}

}  // namespace
}  // namespace tessera
