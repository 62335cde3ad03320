#include "tessera/tensor/matmul.h"

#include <algorithm>

#include "blas.h"
#include "tessera/tensor/elementwise.h"
#include "tessera/tensor/threads.h"

namespace tessera {
namespace {

// A 2-D operand as BLAS sees it: row-major data, maybe transposed, with a leading dimension.
struct BlasOperand {
  Tensor storage;  // keeps a copy alive when one was needed
  bool trans;
  int64_t ld;
};

BlasOperand as_blas(const Tensor& m) {
  int64_t rows = m.size(0);
  int64_t cols = m.size(1);
  const Shape& st = m.strides();
  if ((st[1] == 1 || cols == 1) && st[0] >= std::max<int64_t>(cols, 1)) {
    return {m, false, st[0]};
  }
  if ((st[0] == 1 || rows == 1) && st[1] >= std::max<int64_t>(rows, 1)) {
    return {m, true, st[1]};
  }
  Tensor c = m.contiguous();
  return {c, false, std::max<int64_t>(cols, 1)};
}

void check_inner(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype()) {
    throw DTypeError(detail::concat(op, ": dtypes differ: ", dtype_name(a.dtype()), " ",
                                    shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ",
                                    shape_str(b.shape())));
  }
  if (a.size(-1) != b.size(-2)) {
    throw ShapeError(detail::concat(op, ": lhs ", shape_str(a.shape()), " and rhs ",
                                    shape_str(b.shape()), ": inner dims ", a.size(-1),
                                    " != ", b.size(-2)));
  }
}

void gemm2d(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  int64_t m = a.size(0);
  int64_t k = a.size(1);
  int64_t n = b.size(1);
  if (m == 0 || n == 0) return;
  BlasOperand pa = as_blas(a);
  BlasOperand pb = as_blas(b);
  int64_t ldc = std::max<int64_t>(out.strides()[0], 1);
  if (k == 0) {
    Tensor o = out;
    if (beta == 0.0) {
      o.zero_();
    } else {
      scale_(o, beta);
    }
    return;
  }
  TESSERA_DISPATCH_FLOATING(a.dtype(), "matmul", [&] {
    kernels::gemm<scalar_t>(pa.trans, pb.trans, m, n, k, static_cast<scalar_t>(alpha),
                            pa.storage.data<scalar_t>(), pa.ld, pb.storage.data<scalar_t>(), pb.ld,
                            static_cast<scalar_t>(beta), out.data<scalar_t>(), ldc);
  });
}

}  // namespace

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, double alpha, double beta) {
  if (a.dim() != 2 || b.dim() != 2) {
    throw ShapeError(detail::concat("matmul: expected 2-D operands, got lhs ", shape_str(a.shape()),
                                    " and rhs ", shape_str(b.shape())));
  }
  check_inner(a, b, "matmul");
  Shape expected{a.size(0), b.size(1)};
  if (out.shape() != expected || !out.is_contiguous() || out.dtype() != a.dtype()) {
    throw ShapeError(detail::concat("matmul: output ", shape_str(out.shape()), " ",
                                    dtype_name(out.dtype()), " must be contiguous ",
                                    shape_str(expected), " ", dtype_name(a.dtype())));
  }
  gemm2d(a, b, out, alpha, beta);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() == 2 && b.dim() == 2) {
    check_inner(a, b, "matmul");
    Tensor out = Tensor::empty({a.size(0), b.size(1)}, a.dtype());
    gemm2d(a, b, out, 1.0, 0.0);
    return out;
  }
  if (a.dim() == 3 && (b.dim() == 3 || b.dim() == 2)) {
    check_inner(a, b, "matmul");
    if (b.dim() == 3 && b.size(0) != a.size(0)) {
      throw ShapeError(detail::concat("matmul: batch sizes differ: lhs ", shape_str(a.shape()),
                                      " and rhs ", shape_str(b.shape())));
    }
    Tensor out = Tensor::empty({a.size(0), a.size(1), b.size(-1)}, a.dtype());
    for (int64_t i = 0; i < a.size(0); ++i) {
      gemm2d(a.select(0, i), b.dim() == 3 ? b.select(0, i) : b, out.select(0, i), 1.0, 0.0);
    }
    return out;
  }
  throw ShapeError(detail::concat("matmul: unsupported ranks: lhs ", shape_str(a.shape()),
                                  " and rhs ", shape_str(b.shape())));
}

}  // namespace tessera
