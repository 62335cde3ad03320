#include "mpi_runtime.h"

#include <atomic>
#include <cstdlib>

#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::mpi {
namespace {

// Read by the exit handler, which may run after the runtime object is gone.
std::atomic<bool> finalize_abandoned{false};

// MPI's user-function signature over tessera's reduce functions: inout[i] = in[i] op inout[i]
// (every op here is commutative).
template <DataType kType, ReduceOp kOp>
void user_reduce(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  static const ReduceFunction kReduce = reduce_function(kType, kOp);
  kReduce(inout, inout, in, static_cast<std::size_t>(*len));
}

template <DataType kType, ReduceOp kOp>
MPI_Op create_op() {
  MPI_Op op = MPI_OP_NULL;
  check_mpi(MPI_Op_create(&user_reduce<kType, kOp>, /*commute=*/1, &op), "MPI_Op_create",
            "creating the MPI reduction for " + std::string(data_type_name(kType)) + " " +
                std::string(reduce_op_name(kOp)));
  return op;
}

std::size_t index(DataType dtype) { return static_cast<std::size_t>(dtype); }
std::size_t index(ReduceOp op) { return static_cast<std::size_t>(op); }

}  // namespace

std::string mpi_error(const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    return detail::concat(call, " failed with MPI error ", code);
  }
  return detail::concat(call, " failed: ", std::string(text, static_cast<std::size_t>(length)));
}

void check_mpi(int code, const char* call, const std::string& what) {
  if (code != MPI_SUCCESS) throw CommError(what + ": " + mpi_error(call, code));
}

MpiRuntime& MpiRuntime::instance() {
  static MpiRuntime runtime;
  return runtime;
}

MpiRuntime::MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0) throw CommError("MPI backend: MPI has been finalised in this process");
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (initialized == 0) {
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread",
              "MPI backend");
    owns_mpi_ = true;
    std::atexit(&MpiRuntime::finalize_at_exit);
  } else {
    check_mpi(MPI_Query_thread(&provided), "MPI_Query_thread", "MPI backend");
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    throw CommError(detail::concat(
        "MPI backend: MPI offers thread level ", provided,
        " (below MPI_THREAD_SERIALIZED): tessera calls MPI from its communication threads; "
        "initialise MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE) or let tessera initialise it"));
  }
  serialize_ = provided < MPI_THREAD_MULTIPLE;
  for (auto& row : user_ops_) {
    for (auto& op : row) op = MPI_OP_NULL;
  }
  user_ops_[index(DataType::kFloat32)][index(ReduceOp::kMax)] =
      create_op<DataType::kFloat32, ReduceOp::kMax>();
  user_ops_[index(DataType::kFloat32)][index(ReduceOp::kMin)] =
      create_op<DataType::kFloat32, ReduceOp::kMin>();
  user_ops_[index(DataType::kFloat64)][index(ReduceOp::kMax)] =
      create_op<DataType::kFloat64, ReduceOp::kMax>();
  user_ops_[index(DataType::kFloat64)][index(ReduceOp::kMin)] =
      create_op<DataType::kFloat64, ReduceOp::kMin>();
  user_ops_[index(DataType::kBFloat16)][index(ReduceOp::kSum)] =
      create_op<DataType::kBFloat16, ReduceOp::kSum>();
  user_ops_[index(DataType::kBFloat16)][index(ReduceOp::kMax)] =
      create_op<DataType::kBFloat16, ReduceOp::kMax>();
  user_ops_[index(DataType::kBFloat16)][index(ReduceOp::kMin)] =
      create_op<DataType::kBFloat16, ReduceOp::kMin>();
  user_ops_[index(DataType::kFloat16)][index(ReduceOp::kSum)] =
      create_op<DataType::kFloat16, ReduceOp::kSum>();
  user_ops_[index(DataType::kFloat16)][index(ReduceOp::kMax)] =
      create_op<DataType::kFloat16, ReduceOp::kMax>();
  user_ops_[index(DataType::kFloat16)][index(ReduceOp::kMin)] =
      create_op<DataType::kFloat16, ReduceOp::kMin>();
}

void MpiRuntime::finalize_at_exit() noexcept {
  if (finalize_abandoned.load()) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized == 0) MPI_Finalize();
}

void MpiRuntime::abandon_finalize() noexcept { finalize_abandoned.store(true); }

std::unique_lock<std::mutex> MpiRuntime::lock() {
  return serialize_ ? std::unique_lock<std::mutex>(mutex_) : std::unique_lock<std::mutex>();
}

MPI_Datatype MpiRuntime::datatype(DataType dtype) const {
  switch (dtype) {
    case DataType::kFloat32:
      return MPI_FLOAT;
    case DataType::kFloat64:
      return MPI_DOUBLE;
    case DataType::kInt32:
      return MPI_INT32_T;
    case DataType::kInt64:
      return MPI_INT64_T;
    case DataType::kBFloat16:
    case DataType::kFloat16:
      return MPI_UINT16_T;  // storage only: every reduction on them is a user operation
  }
  throw ValueError(detail::concat("MPI backend: unknown DataType ", static_cast<int>(dtype)));
}

MPI_Op MpiRuntime::op(DataType dtype, ReduceOp op) const {
  const ReduceOp base = op == ReduceOp::kAvg ? ReduceOp::kSum : op;
  if (MPI_Op user = user_ops_[index(dtype)][index(base)]; user != MPI_OP_NULL) return user;
  switch (base) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  throw ValueError(detail::concat("MPI backend: unknown ReduceOp ", static_cast<int>(op)));
}

}  // namespace tessera::comm::mpi
