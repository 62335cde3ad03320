#pragma once

#include <cstdint>
#include <functional>

namespace tessera {

// Number of threads intra-op kernels use (ours and OpenBLAS's, never both at once).
// Default: TESSERA_NUM_THREADS, else hardware cores / local ranks (TESSERA_LOCAL_WORLD_SIZE).
int num_threads();

// Sets the intra-op thread count for this process. Thread-safe, but takes effect for kernels
// started afterwards. Prefer tessera::set_num_threads in tensor/threads.h, which also sets BLAS.
void set_core_num_threads(int n);

// Work below this many elements per thread costs more to fork and join than it saves, and on a
// loaded machine a fork-join waits for a descheduled thread: keep it serial.
inline constexpr int64_t kMinParallelElements = 32768;

// The grain for items that each touch `elements_per_item` elements.
inline int64_t grain_for(int64_t elements_per_item) {
  return elements_per_item >= kMinParallelElements
             ? 1
             : kMinParallelElements / (elements_per_item < 1 ? 1 : elements_per_item);
}

// Runs fn(begin, end) over [0, n) split into at most num_threads() contiguous chunks of about
// `grain` items or more (the last chunk may be smaller), on the process's OpenMP pool (shared with
// oneDNN); the calling thread runs one chunk. Returns when all chunks are done; rethrows the first
// exception a chunk threw. Nested calls run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tessera
