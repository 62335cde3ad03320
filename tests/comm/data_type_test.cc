#include "tessera/comm/data_type.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace tessera::comm {
namespace {

TEST(DataType, SizesAndNames) {
  EXPECT_EQ(data_type_size(DataType::kFloat32), 4u);
  EXPECT_EQ(data_type_size(DataType::kFloat64), 8u);
  EXPECT_EQ(data_type_size(DataType::kInt32), 4u);
  EXPECT_EQ(data_type_size(DataType::kInt64), 8u);
  EXPECT_EQ(data_type_size(DataType::kBFloat16), 2u);
  EXPECT_EQ(data_type_size(DataType::kFloat16), 2u);
  EXPECT_EQ(data_type_name(DataType::kBFloat16), "bfloat16");
  EXPECT_EQ(reduce_op_name(ReduceOp::kAvg), "avg");
  EXPECT_FALSE(is_valid(static_cast<DataType>(9)));
  EXPECT_EQ(DataTypeOf<std::int64_t>::kValue, DataType::kInt64);
}

TEST(DataType, EverySixteenBitValueSurvivesARoundTripThroughFloat) {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float bf = bfloat16_to_float(h);
    const float fp = float16_to_float(h);
    if (std::isnan(bf)) {
      EXPECT_TRUE(std::isnan(bfloat16_to_float(bfloat16_from_float(bf)))) << bits;
    } else {
      EXPECT_EQ(bfloat16_from_float(bf), h) << bits;
    }
    if (std::isnan(fp)) {
      EXPECT_TRUE(std::isnan(float16_to_float(float16_from_float(fp)))) << bits;
    } else {
      EXPECT_EQ(float16_from_float(fp), h) << bits;
    }
  }
}

TEST(DataType, Float16ConversionMatchesTheCompilersRounding) {
#ifndef __FLT16_MAX__
  GTEST_SKIP() << "this compiler has no _Float16 on this target to compare with (clang < 15)";
#else
  // GCC's _Float16 converts with IEEE round-to-nearest-even, subnormals and overflow included.
  std::mt19937 random(7);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    const float f = std::bit_cast<float>(any_bits(random));
    if (std::isnan(f)) continue;
    const auto reference = std::bit_cast<std::uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(float16_from_float(f), reference) << "float bits " << std::bit_cast<std::uint32_t>(f);
  }
#endif
  // Ties go to even; beyond the largest half, infinity.
  EXPECT_EQ(float16_to_float(float16_from_float(2049.0f)), 2048.0f);
  EXPECT_EQ(float16_to_float(float16_from_float(2051.0f)), 2052.0f);
  EXPECT_EQ(float16_to_float(float16_from_float(65520.0f)), std::numeric_limits<float>::infinity());
  EXPECT_EQ(float16_to_float(float16_from_float(65519.0f)), 65504.0f);
}

TEST(DataType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(bfloat16_to_float(bfloat16_from_float(257.0f)), 256.0f);
  EXPECT_EQ(bfloat16_to_float(bfloat16_from_float(259.0f)), 260.0f);
  EXPECT_EQ(bfloat16_to_float(bfloat16_from_float(257.5f)), 258.0f);
  EXPECT_EQ(bfloat16_to_float(bfloat16_from_float(-1.0f)), -1.0f);
  EXPECT_EQ(bfloat16_to_float(bfloat16_from_float(std::numeric_limits<float>::max())),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bfloat16_to_float(bfloat16_from_float(std::nanf("")))));
}

}  // namespace
}  // namespace tessera::comm
