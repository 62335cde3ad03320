#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tessera/core/half.h"  // the 16-bit conversions comm reduces with

namespace tessera::comm {

// Element types comm moves. comm knows nothing of tensors: a buffer is a pointer, a count and one
// of these. kBFloat16 and kFloat16 are 16-bit storage (raw uint16_t bits) for compressed
// gradients; their reductions compute in float and round to nearest even.
enum class DataType : std::uint8_t { kFloat32, kFloat64, kInt32, kInt64, kBFloat16, kFloat16 };

// kAvg is the sum divided by the group size: for integers the division truncates toward zero;
// for 16-bit floats the sum is rounded to 16 bits at each step, then divided in float and rounded.
// kMax and kMin return NaN when either operand is NaN.
enum class ReduceOp : std::uint8_t { kSum, kAvg, kMax, kMin };

// Bytes per element.
[[nodiscard]] constexpr std::size_t data_type_size(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kInt32:
      return 4;
    case DataType::kFloat64:
    case DataType::kInt64:
      return 8;
    case DataType::kBFloat16:
    case DataType::kFloat16:
      return 2;
  }
  return 0;
}

// "float32", "bfloat16", ...; "DataType(N)" for a value outside the enum.
[[nodiscard]] std::string_view data_type_name(DataType dtype);
// "sum", "avg", "max", "min".
[[nodiscard]] std::string_view reduce_op_name(ReduceOp op);
// False for a value cast from an integer outside the enum.
[[nodiscard]] bool is_valid(DataType dtype);
[[nodiscard]] bool is_valid(ReduceOp op);

// The DataType of a C++ element type, for the span overloads of ProcessGroup. 16-bit floats have
// no C++ type here: pass their uint16_t storage with an explicit DataType.
template <typename T>
struct DataTypeOf;
template <>
struct DataTypeOf<float> {
  static constexpr DataType kValue = DataType::kFloat32;
};
template <>
struct DataTypeOf<double> {
  static constexpr DataType kValue = DataType::kFloat64;
};
template <>
struct DataTypeOf<std::int32_t> {
  static constexpr DataType kValue = DataType::kInt32;
};
template <>
struct DataTypeOf<std::int64_t> {
  static constexpr DataType kValue = DataType::kInt64;
};

}  // namespace tessera::comm
