#include "tessera/tensor/dtype.h"

#include <bit>
#include <cmath>

namespace tessera {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
      return 8;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kBFloat16:
      return 2;
    case DType::kFloat16:
      return 2;
  }
  throw InternalError("dtype_size: unknown dtype");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
  }
  return "unknown";
}

bool is_floating(DType dtype) { return dtype != DType::kInt32 && dtype != DType::kInt64; }

BFloat16 to_bfloat16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return {static_cast<uint16_t>((bits >> 16) | 0x40)};
  uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return {static_cast<uint16_t>((bits + rounding) >> 16)};
}

float from_bfloat16(BFloat16 value) {
  return std::bit_cast<float>(static_cast<uint32_t>(value.bits) << 16);
}

#ifdef __FLT16_MAX__
Float16 to_float16(float value) { return {std::bit_cast<uint16_t>(static_cast<_Float16>(value))}; }

float from_float16(Float16 value) {
  return static_cast<float>(std::bit_cast<_Float16>(value.bits));
}
#else
// The same conversions by bit manipulation, for compilers without _Float16 on this target (clang
// before 15 on x86: the sanitizer build). Rounds to nearest even, as the hardware does; a NaN
// becomes the quiet NaN 0x7e00.
Float16 to_float16(float value) {
  constexpr uint32_t kInfinity = 255u << 23;
  constexpr uint32_t kHalfOverflow = (127u + 16) << 23;  // 2^16: rounds to infinity and beyond
  constexpr uint32_t kHalfNormal = 113u << 23;           // 2^-14: the smallest normal half
  const float denormal_magic = std::bit_cast<float>(((127u - 15) + (23 - 10) + 1) << 23);
  uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint16_t half = 0;
  if (bits >= kHalfOverflow) {
    half = bits > kInfinity ? 0x7e00 : 0x7c00;
  } else if (bits < kHalfNormal) {
    // Adding the magic number lets the FPU round the mantissa into place.
    const float shifted = std::bit_cast<float>(bits) + denormal_magic;
    half = static_cast<uint16_t>(std::bit_cast<uint32_t>(shifted) -
                                 std::bit_cast<uint32_t>(denormal_magic));
  } else {
    const uint32_t odd = (bits >> 13) & 1;
    bits += ((15u - 127) << 23) + 0xfff + odd;
    half = static_cast<uint16_t>(bits >> 13);
  }
  return {static_cast<uint16_t>(half | (sign >> 16))};
}

float from_float16(Float16 value) {
  constexpr uint32_t kExponent = 0x7c00u << 13;
  const float magic = std::bit_cast<float>(113u << 23);
  uint32_t bits = (value.bits & 0x7fffu) << 13;
  const uint32_t exponent = bits & kExponent;
  bits += (127u - 15) << 23;
  if (exponent == kExponent) {
    bits += (128u - 16) << 23;  // infinity or NaN
  } else if (exponent == 0) {
    bits += 1u << 23;  // zero or subnormal: renormalise
    bits = std::bit_cast<uint32_t>(std::bit_cast<float>(bits) - magic);
  }
  return std::bit_cast<float>(bits | (static_cast<uint32_t>(value.bits & 0x8000u) << 16));
}
#endif

}  // namespace tessera
