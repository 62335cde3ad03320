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

// Runs fn(begin, end) over [0, n) split into at most num_threads() contiguous chunks of at least
// `grain` items, on the process's OpenMP pool (shared with oneDNN); the calling thread runs one
// chunk. Returns when all chunks are done; rethrows the first exception a chunk threw. Nested
// calls run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tessera
