#include "tessera/tensor/threads.h"

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
}

}  // namespace tessera
