#include "tessera/tensor/dtype.h"

#include "tessera/core/half.h"

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

BFloat16 to_bfloat16(float value) { return {bfloat16_from_float(value)}; }

float from_bfloat16(BFloat16 value) { return bfloat16_to_float(value.bits); }

Float16 to_float16(float value) { return {float16_from_float(value)}; }

float from_float16(Float16 value) { return float16_to_float(value.bits); }

}  // namespace tessera
