#include "tessera/tensor/matmul.h"

#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;

// out[i, j] = sum_k a[i, k] * b[k, j] in double, reading any layout through at().
Tensor matmul_ref(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += a.at({i, p}) * b.at({p, j});
      out[static_cast<size_t>(i * n + j)] = acc;
    }
  }
  return Tensor::from_vector(out, {m, n});
}

double tolerance(DType dtype) { return dtype == DType::kFloat32 ? 1e-5 : 1e-12; }

TEST(Matmul, MatchesTheReferenceForAllFourTransposeCombinations) {
  Generator gen(1);
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    const double tol = tolerance(dtype);
    // a is [5, 7] and b is [7, 3], each either contiguous or the transpose view of its transpose.
    Tensor a = Tensor::randn({5, 7}, gen, dtype);
    Tensor a_t = Tensor::randn({7, 5}, gen, dtype).t();
    Tensor b = Tensor::randn({7, 3}, gen, dtype);
    Tensor b_t = Tensor::randn({3, 7}, gen, dtype).t();
    ASSERT_FALSE(a_t.is_contiguous());
    ASSERT_FALSE(b_t.is_contiguous());
    for (const Tensor& lhs : {a, a_t}) {
      for (const Tensor& rhs : {b, b_t}) {
        Tensor out = matmul(lhs, rhs);
        EXPECT_EQ(out.shape(), (Shape{5, 3}));
        EXPECT_TRUE(out.is_contiguous());
        EXPECT_TRUE(tensors_close(out, matmul_ref(lhs, rhs), tol, tol))
            << dtype_name(dtype) << " lhs contiguous " << lhs.is_contiguous() << " rhs contiguous "
            << rhs.is_contiguous();
      }
    }
  }
}

TEST(Matmul, ReadsViewsWhoseLeadingDimensionExceedsTheirWidth) {
  Generator gen(2);
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    const double tol = tolerance(dtype);
    Tensor big = Tensor::randn({9, 11}, gen, dtype);
    Tensor cols = big.slice(1, 2, 6);                   // [9, 4], row stride 11
    Tensor block = big.slice(0, 1, 5).slice(1, 3, 10);  // [4, 7], offset, row stride 11
    Tensor rows = big.slice(0, 0, 9, 2);                // [5, 11], row stride 22
    Tensor block_t = block.t();                         // [7, 4], transposed with ld 11
    EXPECT_TRUE(tensors_close(matmul(cols.t(), cols), matmul_ref(cols.t(), cols), tol, tol));
    EXPECT_TRUE(tensors_close(matmul(block, block_t), matmul_ref(block, block_t), tol, tol));
    EXPECT_TRUE(tensors_close(matmul(block_t, block), matmul_ref(block_t, block), tol, tol));
    EXPECT_TRUE(tensors_close(matmul(rows.slice(1, 0, 9), cols),
                              matmul_ref(rows.slice(1, 0, 9), cols), tol, tol));
    // Column steps cannot be expressed to BLAS: these go through a copy and must still be right.
    Tensor stepped = big.slice(1, 0, 11, 3);  // [9, 4], column stride 3
    EXPECT_TRUE(
        tensors_close(matmul(stepped.t(), stepped), matmul_ref(stepped.t(), stepped), tol, tol));
    // Broadcast (stride 0) operands.
    Tensor ones_row = Tensor::randn({1, 4}, gen, dtype).expand({6, 4});
    EXPECT_TRUE(
        tensors_close(matmul(ones_row, cols.t()), matmul_ref(ones_row, cols.t()), tol, tol));
  }
}

TEST(Matmul, HandlesVectorShapedAndEmptyOperands) {
  Generator gen(3);
  Tensor row = Tensor::randn({1, 6}, gen, DType::kFloat64);
  Tensor col = Tensor::randn({6, 1}, gen, DType::kFloat64);
  EXPECT_TRUE(tensors_close(matmul(row, col), matmul_ref(row, col)));
  EXPECT_TRUE(tensors_close(matmul(col, row), matmul_ref(col, row)));
  EXPECT_TRUE(tensors_close(matmul(col.t(), row.t()), matmul_ref(col.t(), row.t())));
  // k = 0: the product of [3, 0] and [0, 2] is zeros.
  Tensor out =
      matmul(Tensor::empty({3, 0}, DType::kFloat64), Tensor::empty({0, 2}, DType::kFloat64));
  EXPECT_TRUE(tensors_close(out, Tensor::zeros({3, 2}, DType::kFloat64)));
  EXPECT_EQ(matmul(Tensor::empty({0, 4}), Tensor::empty({4, 2})).shape(), (Shape{0, 2}));
}

TEST(Matmul, BatchesThreeDimensionalOperands) {
  Generator gen(4);
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    const double tol = tolerance(dtype);
    Tensor a = Tensor::randn({3, 4, 5}, gen, dtype);
    Tensor b = Tensor::randn({3, 5, 2}, gen, dtype);
    Tensor b_t = Tensor::randn({3, 2, 5}, gen, dtype).transpose(1, 2);
    Tensor w = Tensor::randn({5, 6}, gen, dtype);
    Tensor batched = matmul(a, b);
    Tensor batched_t = matmul(a, b_t);
    Tensor shared = matmul(a, w);
    ASSERT_EQ(batched.shape(), (Shape{3, 4, 2}));
    ASSERT_EQ(shared.shape(), (Shape{3, 4, 6}));
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(tensors_close(batched.select(0, i), matmul_ref(a.select(0, i), b.select(0, i)),
                                tol, tol));
      EXPECT_TRUE(tensors_close(batched_t.select(0, i),
                                matmul_ref(a.select(0, i), b_t.select(0, i)), tol, tol));
      EXPECT_TRUE(tensors_close(shared.select(0, i), matmul_ref(a.select(0, i), w), tol, tol));
    }
  }
}

TEST(MatmulInto, ScalesAndAccumulatesIntoTheOutput) {
  Generator gen(5);
  Tensor a = Tensor::randn({3, 4}, gen, DType::kFloat64);
  Tensor b = Tensor::randn({5, 4}, gen, DType::kFloat64).t();
  Tensor out = Tensor::ones({3, 5}, DType::kFloat64);
  matmul_into(a, b, out, 2.0, 1.0);
  Tensor expected = matmul_ref(a, b);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_NEAR(out.at({i, j}), 1.0 + 2.0 * expected.at({i, j}), 1e-12);
  }
  matmul_into(a, b, out);  // beta = 0 overwrites
  EXPECT_TRUE(tensors_close(out, expected));
  Tensor wrong = Tensor::zeros({5, 3}, DType::kFloat64);
  EXPECT_THROW(matmul_into(a, b, wrong), ShapeError);
  Tensor strided_out = Tensor::zeros({3, 10}, DType::kFloat64).slice(1, 0, 10, 2);
  EXPECT_THROW(matmul_into(a, b, strided_out), ShapeError);
  Tensor float_out = Tensor::zeros({3, 5});
  EXPECT_THROW(matmul_into(a, b, float_out), ShapeError);
}

TEST(Matmul, RejectsBadShapesNamingBoth) {
  Tensor a = Tensor::zeros({2, 3});
  try {
    (void)matmul(a, Tensor::zeros({4, 5}));
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("matmul"), std::string::npos) << what;
    EXPECT_NE(what.find("[2,3]"), std::string::npos) << what;
    EXPECT_NE(what.find("[4,5]"), std::string::npos) << what;
  }
  EXPECT_THROW(matmul(Tensor::zeros({3}), Tensor::zeros({3})), ShapeError);
  EXPECT_THROW(matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 5})), ShapeError);
  EXPECT_THROW(matmul(a, Tensor::zeros({3, 2}, DType::kFloat64)), DTypeError);
}

}  // namespace
}  // namespace tessera
