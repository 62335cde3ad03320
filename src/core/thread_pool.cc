#include "tessera/core/thread_pool.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "tessera/core/env.h"
#include "tessera/core/error.h"

namespace tessera {
namespace {

int default_num_threads() {
  if (auto n = env_int("TESSERA_NUM_THREADS")) {
    if (*n < 1) throw ValueError(detail::concat("TESSERA_NUM_THREADS=", *n, " must be >= 1"));
    return static_cast<int>(*n);
  }
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int local = static_cast<int>(env_int("TESSERA_LOCAL_WORLD_SIZE").value_or(1));
  return std::max(1, cores / std::max(1, local));
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{[] {
    int v = default_num_threads();
    omp_set_num_threads(v);
    return v;
  }()};
  return n;
}

}  // namespace

int num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_core_num_threads(int n) {
  if (n < 1) throw ValueError(detail::concat("set_num_threads: ", n, " must be >= 1"));
  thread_setting().store(n);
  omp_set_num_threads(n);
}

// OpenMP's pool is the one oneDNN runs on, so our kernels and oneDNN's share the same threads
// and never oversubscribe the cores.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (chunks <= 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  const int64_t step = (n + chunks - 1) / chunks;
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for num_threads(static_cast <int>(chunks)) schedule(static, 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    int64_t begin = chunk * step;
    int64_t end = std::min(n, begin + step);
    if (begin >= end) continue;
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace tessera
