#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tessera/core/error.h"

namespace tessera {

// Element types. float32 (and float64, for gradient checks) compute; int32/int64 hold labels and
// indices; bfloat16/float16 are storage formats for compressed communication.
enum class DType : uint8_t { kFloat32, kFloat64, kInt32, kInt64, kBFloat16, kFloat16 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);

// 16-bit float storage types: conversion from float rounds to nearest even.
struct BFloat16 {
  uint16_t bits;
};
struct Float16 {
  uint16_t bits;
};
BFloat16 to_bfloat16(float value);
float from_bfloat16(BFloat16 value);
Float16 to_float16(float value);
float from_float16(Float16 value);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kFloat64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType dtype_of<BFloat16>() {
  return DType::kBFloat16;
}
template <>
constexpr DType dtype_of<Float16>() {
  return DType::kFloat16;
}

}  // namespace tessera

// Calls the body with `scalar_t` bound to the C++ type of a compute dtype (float32 or float64);
// any other dtype throws DTypeError naming `op`.
#define TESSERA_DISPATCH_FLOATING(dtype, op, ...)                                      \
  [&] {                                                                                \
    switch (dtype) {                                                                   \
      case ::tessera::DType::kFloat32: {                                               \
        using scalar_t = float;                                                        \
        return __VA_ARGS__();                                                          \
      }                                                                                \
      case ::tessera::DType::kFloat64: {                                               \
        using scalar_t = double;                                                       \
        return __VA_ARGS__();                                                          \
      }                                                                                \
      default:                                                                         \
        throw ::tessera::DTypeError(::tessera::detail::concat(                         \
            op, ": expected float32 or float64, got ", ::tessera::dtype_name(dtype))); \
    }                                                                                  \
  }()

// As above for integer index types (int32, int64), binding `index_t`.
#define TESSERA_DISPATCH_INDEX(dtype, op, ...)                                             \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      case ::tessera::DType::kInt32: {                                                     \
        using index_t = int32_t;                                                           \
        return __VA_ARGS__();                                                              \
      }                                                                                    \
      case ::tessera::DType::kInt64: {                                                     \
        using index_t = int64_t;                                                           \
        return __VA_ARGS__();                                                              \
      }                                                                                    \
      default:                                                                             \
        throw ::tessera::DTypeError(::tessera::detail::concat(                             \
            op, ": expected int32 or int64 indices, got ", ::tessera::dtype_name(dtype))); \
    }                                                                                      \
  }()
