#include "tessera/tensor/threads.h"

#include <omp.h>

#include <mutex>

#include "tessera/core/thread_pool.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace tessera {

void set_num_threads(int n) {
  set_core_num_threads(n);
  openblas_set_num_threads(n);
}

void apply_blas_threads() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(num_threads()); });
  // OpenMP's thread count is per calling thread, and oneDNN reads it from the thread that calls
  // it: apply the setting on every thread that runs kernels, once per change.
  thread_local int applied = 0;
  const int n = num_threads();
  if (applied != n) {
    omp_set_num_threads(n);
    applied = n;
  }
}

}  // namespace tessera
