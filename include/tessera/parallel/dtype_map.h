#pragma once

#include "tessera/comm/data_type.h"
#include "tessera/tensor/dtype.h"

namespace tessera::parallel {

// The comm layer's name for a tensor dtype (comm knows nothing of tensors).
inline comm::DataType to_comm(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return comm::DataType::kFloat32;
    case DType::kFloat64:
      return comm::DataType::kFloat64;
    case DType::kInt32:
      return comm::DataType::kInt32;
    case DType::kInt64:
      return comm::DataType::kInt64;
    case DType::kBFloat16:
      return comm::DataType::kBFloat16;
    case DType::kFloat16:
      return comm::DataType::kFloat16;
  }
  throw InternalError("to_comm: unknown dtype");
}

}  // namespace tessera::parallel
