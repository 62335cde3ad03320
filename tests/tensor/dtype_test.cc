#include "tessera/tensor/dtype.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

#include "tessera/tensor/tensor.h"

namespace tessera {
namespace {

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

TEST(DType, SizesNamesAndKinds) {
  EXPECT_EQ(dtype_size(DType::kFloat32), 4u);
  EXPECT_EQ(dtype_size(DType::kFloat64), 8u);
  EXPECT_EQ(dtype_size(DType::kInt32), 4u);
  EXPECT_EQ(dtype_size(DType::kInt64), 8u);
  EXPECT_EQ(dtype_size(DType::kBFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::kFloat16), 2u);
  EXPECT_STREQ(dtype_name(DType::kBFloat16), "bfloat16");
  EXPECT_STREQ(dtype_name(DType::kFloat16), "float16");
  EXPECT_TRUE(is_floating(DType::kBFloat16));
  EXPECT_FALSE(is_floating(DType::kInt64));
}

TEST(BFloat16, ConvertsKnownValuesToTheirBitPatterns) {
  EXPECT_EQ(to_bfloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(to_bfloat16(-2.0f).bits, 0xC000);
  EXPECT_EQ(to_bfloat16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_bfloat16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_bfloat16(3.140625f).bits, 0x4049);
  EXPECT_EQ(to_bfloat16(std::numeric_limits<float>::infinity()).bits, 0x7F80);
  EXPECT_EQ(to_bfloat16(-std::numeric_limits<float>::infinity()).bits, 0xFF80);
  EXPECT_EQ(from_bfloat16({0x3F80}), 1.0f);
  EXPECT_EQ(from_bfloat16({0xC0A0}), -5.0f);
  EXPECT_EQ(from_bfloat16({0x0001}), from_bits(0x00010000));  // smallest subnormal
}

TEST(BFloat16, RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): it goes to the even one.
  EXPECT_EQ(to_bfloat16(from_bits(0x3F808000)).bits, 0x3F80);
  // 1 + 3 * 2^-8 lies halfway between 0x3F81 and 0x3F82 (even): up.
  EXPECT_EQ(to_bfloat16(from_bits(0x3F818000)).bits, 0x3F82);
  // Just above and below halfway round to the nearer neighbour.
  EXPECT_EQ(to_bfloat16(from_bits(0x3F808001)).bits, 0x3F81);
  EXPECT_EQ(to_bfloat16(from_bits(0x3F807FFF)).bits, 0x3F80);
  // Negative values round by magnitude.
  EXPECT_EQ(to_bfloat16(from_bits(0xBF818000)).bits, 0xBF82);
  // The largest float rounds up to infinity, as round-to-nearest-even must.
  EXPECT_EQ(to_bfloat16(std::numeric_limits<float>::max()).bits, 0x7F80);
}

TEST(BFloat16, KeepsNaNAsNaN) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(from_bfloat16(to_bfloat16(nan))));
  // A signalling NaN whose payload sits in the low bits only must not round to infinity.
  EXPECT_TRUE(std::isnan(from_bfloat16(to_bfloat16(from_bits(0x7F800001)))));
  EXPECT_TRUE(std::isnan(from_bfloat16(to_bfloat16(from_bits(0xFF800001)))));
}

TEST(BFloat16, EveryNonNaNPatternRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    float f = from_bfloat16({static_cast<uint16_t>(bits)});
    if (std::isnan(f)) continue;
    ASSERT_EQ(to_bfloat16(f).bits, bits) << std::hex << bits;
  }
}

TEST(Float16, ConvertsKnownValuesToTheirBitPatterns) {
  EXPECT_EQ(to_float16(1.0f).bits, 0x3C00);
  EXPECT_EQ(to_float16(-2.0f).bits, 0xC000);
  EXPECT_EQ(to_float16(0.5f).bits, 0x3800);
  EXPECT_EQ(to_float16(65504.0f).bits, 0x7BFF);  // the largest finite half
  EXPECT_EQ(to_float16(0.1f).bits, 0x2E66);
  EXPECT_EQ(to_float16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_float16(std::ldexp(1.0f, -24)).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(to_float16(1e6f).bits, 0x7C00);                   // overflow to infinity
  EXPECT_EQ(from_float16({0x3555}), 0.333251953125f);
  EXPECT_EQ(from_float16({0x0400}), std::ldexp(1.0f, -14));  // smallest normal
}

TEST(Float16, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 (0x3C00, even) and 1 + 2^-10 (0x3C01).
  EXPECT_EQ(to_float16(1.0f + std::ldexp(1.0f, -11)).bits, 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 0x3C01 and 0x3C02 (even).
  EXPECT_EQ(to_float16(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3C02);
  // 65520 is halfway between 65504 and 65536 (which is infinity): ties to even overflow.
  EXPECT_EQ(to_float16(65520.0f).bits, 0x7C00);
  EXPECT_EQ(to_float16(65519.0f).bits, 0x7BFF);
  // Halfway between the two smallest subnormals (2^-24 and 2^-23): even is 2^-23.
  EXPECT_EQ(to_float16(3 * std::ldexp(1.0f, -25)).bits, 0x0002);
  EXPECT_EQ(to_float16(std::ldexp(1.0f, -25)).bits, 0x0000);
}

TEST(Float16, EveryNonNaNPatternRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    float f = from_float16({static_cast<uint16_t>(bits)});
    if (std::isnan(f)) continue;
    ASSERT_EQ(to_float16(f).bits, bits) << std::hex << bits;
  }
  EXPECT_TRUE(std::isnan(from_float16(to_float16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(HalfTensors, ConvertThroughCopyAndTo) {
  Tensor f = Tensor::from_vector<float>({1.0f, 1.00390625f, -3.5f, 65504.0f}, {4});
  Tensor b = f.to(DType::kBFloat16);
  EXPECT_EQ(b.dtype(), DType::kBFloat16);
  EXPECT_EQ(b.nbytes(), 8u);
  const BFloat16* bp = b.data<BFloat16>();
  EXPECT_EQ(bp[0].bits, 0x3F80);
  EXPECT_EQ(bp[1].bits, 0x3F80);  // 1 + 2^-8 ties to even
  EXPECT_EQ(bp[2].bits, 0xC060);
  EXPECT_EQ(b.to(DType::kFloat32).to_vector<float>(),
            (std::vector<float>{1.0f, 1.0f, -3.5f, 65536.0f}));
  Tensor h = f.to(DType::kFloat16);
  EXPECT_EQ(h.data<Float16>()[3].bits, 0x7BFF);
  EXPECT_EQ(h.to(DType::kFloat64).to_vector<double>(),
            (std::vector<double>{1.0, 1.00390625, -3.5, 65504.0}));
  // Strided half tensors copy element by element.
  Tensor strided = h.slice(0, 0, 4, 2).to(DType::kFloat32);
  EXPECT_EQ(strided.to_vector<float>(), (std::vector<float>{1.0f, -3.5f}));
}

}  // namespace
}  // namespace tessera
