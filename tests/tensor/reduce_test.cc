#include "tessera/tensor/reduce.h"

#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;

// Reduces a 3-D tensor over `axes` with f, in double, by explicit loops; keepdim keeps size-1 axes.
Tensor reduce_ref(const Tensor& a, std::vector<int64_t> axes, bool keepdim, bool mean) {
  for (auto& ax : axes) ax = ax < 0 ? ax + 3 : ax;
  if (axes.empty()) axes = {0, 1, 2};
  auto reduced = [&](int64_t d) { return std::find(axes.begin(), axes.end(), d) != axes.end(); };
  Shape kept;
  for (int64_t d = 0; d < 3; ++d) kept.push_back(reduced(d) ? 1 : a.size(d));
  std::vector<double> out(static_cast<size_t>(shape_numel(kept)), 0.0);
  double count = 1;
  for (int64_t d = 0; d < 3; ++d) count *= reduced(d) ? static_cast<double>(a.size(d)) : 1.0;
  for (int64_t i = 0; i < a.size(0); ++i) {
    for (int64_t j = 0; j < a.size(1); ++j) {
      for (int64_t k = 0; k < a.size(2); ++k) {
        int64_t oi = reduced(0) ? 0 : i, oj = reduced(1) ? 0 : j, ok = reduced(2) ? 0 : k;
        out[static_cast<size_t>((oi * kept[1] + oj) * kept[2] + ok)] +=
            a.at({i, j, k}) / (mean ? count : 1.0);
      }
    }
  }
  Shape shape;
  for (int64_t d = 0; d < 3; ++d) {
    if (!reduced(d) || keepdim) shape.push_back(kept[d]);
  }
  return Tensor::from_vector(out, shape);
}

TEST(Reduce, SumAndMeanOverEveryAxisSetMatchTheReference) {
  Generator gen(1);
  const std::vector<std::vector<int64_t>> axis_sets = {{},     {0},    {1},    {2},       {-1},
                                                       {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}, {-3, -1}};
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    Tensor contiguous = Tensor::randn({3, 4, 5}, gen, dtype);
    Tensor permuted = Tensor::randn({5, 3, 4}, gen, dtype).permute({1, 2, 0});
    Tensor stepped = Tensor::randn({3, 4, 10}, gen, dtype).slice(2, 1, 10, 2);
    for (const Tensor& a : {contiguous, permuted, stepped}) {
      for (const auto& axes : axis_sets) {
        for (bool keepdim : {false, true}) {
          const double tol = dtype == DType::kFloat32 ? 1e-5 : 1e-12;
          Tensor s = sum(a, axes, keepdim);
          Tensor m = mean(a, axes, keepdim);
          EXPECT_EQ(s.dtype(), dtype);
          EXPECT_TRUE(tensors_close(s, reduce_ref(a, axes, keepdim, false), tol, tol))
              << "sum axes " << shape_str(axes) << " keepdim " << keepdim;
          EXPECT_TRUE(tensors_close(m, reduce_ref(a, axes, keepdim, true), tol, tol))
              << "mean axes " << shape_str(axes) << " keepdim " << keepdim;
        }
      }
    }
  }
}

TEST(Reduce, SumOfLeadingAxesOfALargeTensorIsExact) {
  // The bias-gradient path (leading axes of a contiguous tensor): integers sum exactly.
  Tensor a = Tensor::ones({1000, 7}, DType::kFloat32);
  Tensor s = sum(a, {0});
  for (float v : s.to_vector<float>()) EXPECT_EQ(v, 1000.0f);
  Tensor b = Tensor::ones({10, 20, 3}, DType::kFloat64);
  EXPECT_TRUE(tensors_close(sum(b, {0, 1}), Tensor::full({3}, 200.0, DType::kFloat64)));
}

TEST(Reduce, SumOverAnEmptyAxisIsZero) {
  // An empty batch: whichever path the sum takes, the result is written (not left uninitialised).
  (void)Tensor::full({64}, 7.0,
                     DType::kFloat64);  // leave non-zero bytes for the allocator to reuse
  EXPECT_TRUE(tensors_close(sum(Tensor::zeros({0, 3}, DType::kFloat64), {0}),
                            Tensor::zeros({3}, DType::kFloat64)));
  EXPECT_TRUE(tensors_close(sum(Tensor::zeros({2, 0, 3}, DType::kFloat64), {0, 1}, true),
                            Tensor::zeros({1, 1, 3}, DType::kFloat64)));
  EXPECT_TRUE(tensors_close(sum(Tensor::zeros({3, 0}), {1}), Tensor::zeros({3})));
  EXPECT_TRUE(tensors_close(sum_to(Tensor::zeros({0, 4}), {4}), Tensor::zeros({4})));
}

TEST(Reduce, MaxAndArgmaxPickTheFirstMaximumAlongAnAxis) {
  // Ties: the first index wins.
  Tensor a = Tensor::from_vector<double>({1, 5, 5, 2,   //
                                          7, 0, 7, -1,  //
                                          -3, -2, -9, -2},
                                         {3, 4});
  MaxResult rows = max(a, 1);
  EXPECT_EQ(rows.values.to_vector<double>(), (std::vector<double>{5, 7, -2}));
  EXPECT_EQ(rows.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(rows.indices.dtype(), DType::kInt64);
  MaxResult cols = max(a, 0, true);
  EXPECT_EQ(cols.values.shape(), (Shape{1, 4}));
  EXPECT_EQ(cols.values.to_vector<double>(), (std::vector<double>{7, 5, 7, 2}));
  EXPECT_EQ(cols.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1, 0}));
  EXPECT_EQ(argmax(a, -1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(argmax(a.t(), 1, true).shape(), (Shape{4, 1}));
  EXPECT_EQ(argmax(a.t(), 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1, 0}));
}

TEST(Reduce, MaxOverAMiddleAxisOfA3dTensor) {
  Generator gen(2);
  Tensor a = Tensor::randn({2, 5, 3}, gen, DType::kFloat64);
  MaxResult r = max(a, 1);
  ASSERT_EQ(r.values.shape(), (Shape{2, 3}));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t k = 0; k < 3; ++k) {
      int64_t best = 0;
      for (int64_t j = 1; j < 5; ++j) {
        if (a.at({i, j, k}) > a.at({i, best, k})) best = j;
      }
      EXPECT_EQ(r.indices.at({i, k}), static_cast<double>(best));
      EXPECT_EQ(r.values.at({i, k}), a.at({i, best, k}));
    }
  }
}

TEST(Reduce, MaxOfAnEmptyAxisThrowsShapeError) {
  EXPECT_THROW(max(Tensor::zeros({3, 0}), 1), ShapeError);
  EXPECT_THROW(max(Tensor::zeros({3, 2}), 2), IndexError);
}

TEST(Reduce, SumToUndoesBroadcasting) {
  Generator gen(3);
  Tensor g = Tensor::randn({2, 3, 4}, gen, DType::kFloat64);
  EXPECT_TRUE(tensors_close(sum_to(g, {3, 1}), reduce_ref(g, {0, 2}, true, false).reshape({3, 1})));
  EXPECT_TRUE(tensors_close(sum_to(g, {4}), reduce_ref(g, {0, 1}, false, false)));
  EXPECT_TRUE(tensors_close(sum_to(g, {1, 3, 4}), reduce_ref(g, {0}, true, false)));
  EXPECT_TRUE(tensors_close(sum_to(g, {2, 1, 1}), reduce_ref(g, {1, 2}, true, false)));
  EXPECT_TRUE(tensors_close(sum_to(g, {}), reduce_ref(g, {}, false, false)));
  EXPECT_EQ(sum_to(g, {2, 3, 4}).storage(), g.storage());  // nothing to reduce: no copy
  EXPECT_THROW(sum_to(g, {5}), ShapeError);
  EXPECT_THROW(sum_to(g, {1, 2, 3, 4, 5}), ShapeError);
}

TEST(Reduce, IntegerInputIsRefusedWithDTypeError) {
  EXPECT_THROW(sum(Tensor::zeros({2}, DType::kInt32)), DTypeError);
}

}  // namespace
}  // namespace tessera
