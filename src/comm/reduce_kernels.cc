#include "reduce_kernels.h"

#include <cstdint>
#include <type_traits>

#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

struct Sum {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      // Signed overflow is undefined; unsigned arithmetic wraps, which is what we document.
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
};

struct Max {
  template <typename T>
  T operator()(T a, T b) const {
    // `a != a` is true only for NaN: NaN wins so a bad value is never hidden.
    return (a > b || a != a) ? a : b;  // NOLINT(misc-redundant-expression)
  }
};

struct Min {
  template <typename T>
  T operator()(T a, T b) const {
    return (a < b || a != a) ? a : b;  // NOLINT(misc-redundant-expression)
  }
};

template <typename T, typename Op>
void reduce_plain(void* c, const void* a, const void* b, std::size_t n) {
  T* out = static_cast<T*>(c);
  const T* lhs = static_cast<const T*>(a);
  const T* rhs = static_cast<const T*>(b);
  const Op op;
  for (std::size_t i = 0; i < n; ++i) out[i] = op(lhs[i], rhs[i]);
}

template <float (*ToFloat)(std::uint16_t), std::uint16_t (*FromFloat)(float), typename Op>
void reduce_half(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(c);
  const auto* lhs = static_cast<const std::uint16_t*>(a);
  const auto* rhs = static_cast<const std::uint16_t*>(b);
  const Op op;
  for (std::size_t i = 0; i < n; ++i) out[i] = FromFloat(op(ToFloat(lhs[i]), ToFloat(rhs[i])));
}

template <typename Op>
ReduceFunction for_op(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return &reduce_plain<float, Op>;
    case DataType::kFloat64:
      return &reduce_plain<double, Op>;
    case DataType::kInt32:
      return &reduce_plain<std::int32_t, Op>;
    case DataType::kInt64:
      return &reduce_plain<std::int64_t, Op>;
    case DataType::kBFloat16:
      return &reduce_half<bfloat16_to_float, bfloat16_from_float, Op>;
    case DataType::kFloat16:
      return &reduce_half<float16_to_float, float16_from_float, Op>;
  }
  throw ValueError(detail::concat("reduce: unknown DataType ", static_cast<int>(dtype)));
}

template <typename T>
void divide_plain(void* data, std::size_t n, int divisor) {
  T* values = static_cast<T*>(data);
  const T d = static_cast<T>(divisor);
  for (std::size_t i = 0; i < n; ++i) values[i] = values[i] / d;
}

template <float (*ToFloat)(std::uint16_t), std::uint16_t (*FromFloat)(float)>
void divide_half(void* data, std::size_t n, int divisor) {
  auto* values = static_cast<std::uint16_t*>(data);
  const float d = static_cast<float>(divisor);
  for (std::size_t i = 0; i < n; ++i) values[i] = FromFloat(ToFloat(values[i]) / d);
}

}  // namespace

ReduceFunction reduce_function(DataType dtype, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return for_op<Sum>(dtype);
    case ReduceOp::kMax:
      return for_op<Max>(dtype);
    case ReduceOp::kMin:
      return for_op<Min>(dtype);
  }
  throw ValueError(detail::concat("reduce: unknown ReduceOp ", static_cast<int>(op)));
}

void divide_in_place(void* data, std::size_t n, DataType dtype, int divisor) {
  if (divisor == 1) return;
  switch (dtype) {
    case DataType::kFloat32:
      return divide_plain<float>(data, n, divisor);
    case DataType::kFloat64:
      return divide_plain<double>(data, n, divisor);
    case DataType::kInt32:
      return divide_plain<std::int32_t>(data, n, divisor);
    case DataType::kInt64:
      return divide_plain<std::int64_t>(data, n, divisor);
    case DataType::kBFloat16:
      return divide_half<bfloat16_to_float, bfloat16_from_float>(data, n, divisor);
    case DataType::kFloat16:
      return divide_half<float16_to_float, float16_from_float>(data, n, divisor);
  }
  throw ValueError(detail::concat("reduce: unknown DataType ", static_cast<int>(dtype)));
}

}  // namespace tessera::comm
