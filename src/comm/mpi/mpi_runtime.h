#pragma once

#include <mpi.h>

#include <mutex>
#include <string>

#include "tessera/comm/data_type.h"

namespace tessera::comm::mpi {

// MPI's process-wide state as tessera uses it: initialisation (once), the thread level it got,
// the user operations for reductions MPI lacks, and finalisation at exit. Thread-safe.
class MpiRuntime {
 public:
  // Initialises MPI on the first call (MPI_Init_thread with MPI_THREAD_MULTIPLE) unless the
  // program did; registers MPI_Finalize to run at exit in the first case. Throws CommError when
  // MPI was finalised already or offers less than MPI_THREAD_SERIALIZED.
  static MpiRuntime& instance();

  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  // Held around every MPI call: a no-op lock with MPI_THREAD_MULTIPLE, the process-wide MPI
  // lock below it.
  [[nodiscard]] std::unique_lock<std::mutex> lock();

  [[nodiscard]] MPI_Datatype datatype(DataType dtype) const;
  // The MPI operation for `op` on `dtype`; kAvg gives the sum.
  [[nodiscard]] MPI_Op op(DataType dtype, ReduceOp op) const;

  // A group gave up on an MPI request it could not cancel: finalising at exit would wait for
  // ranks that may never come, so the process exits without it (mpirun then ends the job).
  void abandon_finalize() noexcept;

 private:
  MpiRuntime();
  static void finalize_at_exit() noexcept;

  bool owns_mpi_ = false;  // we initialised MPI and finalise it
  bool serialize_ = false;
  std::mutex mutex_;
  // [dtype][op] user operations; MPI_OP_NULL where a built-in one serves.
  MPI_Op user_ops_[6][4];
};

// "MPI_Iallreduce failed: <MPI's error string>" when `code` is not MPI_SUCCESS.
[[nodiscard]] std::string mpi_error(const char* call, int code);
// Throws CommError("<what>: <call> failed: ...") when `code` is not MPI_SUCCESS.
void check_mpi(int code, const char* call, const std::string& what);

}  // namespace tessera::comm::mpi
