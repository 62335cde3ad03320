#pragma once

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <type_traits>

#include "tessera/core/error.h"
#include "tessera/tensor/threads.h"

namespace tessera::kernels {

// Row-major GEMM on raw pointers: C = alpha * op(A) @ op(B) + beta * C.
// float32 runs on oneDNN's sgemm: its JIT kernels use the widest vector unit the CPU has, whatever
// OPENBLAS_CORETYPE says (docs/design-notes.md). float64 (gradient checks) runs on OpenBLAS's
// dgemm.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  apply_blas_threads();
  if constexpr (std::is_same_v<T, float>) {
    dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                      lda, b, ldb, beta, c, ldc);
    if (status != dnnl_success) {
      throw InternalError(detail::concat("dnnl_sgemm failed with status ", static_cast<int>(status),
                                         " for m=", m, " n=", n, " k=", k));
    }
  } else {
    auto ta = trans_a ? CblasTrans : CblasNoTrans;
    auto tb = trans_b ? CblasTrans : CblasNoTrans;
    cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
  }
}

}  // namespace tessera::kernels
