#pragma once

#include <cstdint>

#include "tessera/core/thread_pool.h"

namespace tessera::optim {

// Below this many elements an update runs on the calling thread: waking the pool costs more than
// the loop (a 32 Ki-element float update takes a few microseconds).
constexpr int64_t kParallelGrain = kMinParallelElements;

// Runs fn(begin, end) over contiguous chunks of [0, n) on the intra-op threads. The optimizers'
// loops are elementwise, so the result does not depend on the thread count.
template <typename Fn>
void for_each_chunk(int64_t n, Fn&& fn) {
  parallel_for(n, kParallelGrain, fn);
}

}  // namespace tessera::optim
