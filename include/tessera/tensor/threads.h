#pragma once

namespace tessera {

// Sets the intra-op thread count for tessera's kernels and for OpenBLAS together, so that the two
// never run more threads than the setting (oversubscribed cores cost 5x on small machines).
void set_num_threads(int n);

// Applies the current setting (TESSERA_NUM_THREADS or cores / local ranks) to OpenBLAS and to
// this thread's OpenMP pool (which oneDNN uses). Called before every GEMM and convolution; cheap
// when nothing changed.
void apply_blas_threads();

}  // namespace tessera
