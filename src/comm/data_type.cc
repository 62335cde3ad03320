#include "tessera/comm/data_type.h"

#include <bit>
#include <cstdint>

namespace tessera::comm {

std::string_view data_type_name(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat16:
      return "float16";
  }
  return "DataType(?)";
}

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "ReduceOp(?)";
}

bool is_valid(DataType dtype) { return static_cast<unsigned>(dtype) <= 5; }

bool is_valid(ReduceOp op) { return static_cast<unsigned>(op) <= 3; }

}  // namespace tessera::comm
