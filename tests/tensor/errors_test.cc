// The acceptance: bad shapes, dtype mismatches and out-of-range indices raise an
// exception whose message names the op and both shapes; none crashes. Kernel-specific errors
// (matmul, conv2d, cross_entropy, embedding) are also checked next to their kernels.

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/tensor/conv.h"
#include "tessera/tensor/elementwise.h"
#include "tessera/tensor/embedding.h"
#include "tessera/tensor/matmul.h"
#include "tessera/tensor/reduce.h"
#include "tessera/tensor/softmax.h"
#include "tessera/tensor/tensor.h"

namespace tessera {
namespace {

// Runs f, expects it to throw E, and returns what().
template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

::testing::AssertionResult names_all(const std::string& what,
                                     const std::vector<std::string>& parts) {
  for (const auto& p : parts) {
    if (what.find(p) == std::string::npos) {
      return ::testing::AssertionFailure() << "'" << what << "' does not name '" << p << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(Errors, BinaryOpOfShapesThatDoNotBroadcastNamesOpAndBothShapes) {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({4});
  for (const auto& [name, op] :
       std::vector<std::pair<std::string, Tensor (*)(const Tensor&, const Tensor&)>>{
           {"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}, {"maximum", maximum}}) {
    auto* apply = op;  // clang 14 cannot capture a structured binding
    std::string what = error_of<ShapeError>([&] { (void)apply(a, b); });
    EXPECT_TRUE(names_all(what, {name, "[2,3]", "[4]"}));
  }
  std::string what = error_of<ShapeError>([&] {
    (void)add(Tensor::zeros({2, 3, 4}), Tensor::zeros({5, 1, 4}));
  });
  EXPECT_TRUE(names_all(what, {"add", "[2,3,4]", "[5,1,4]"}));
}

TEST(Errors, DtypeMismatchNamesOpDtypesAndShapes) {
  std::string what = error_of<DTypeError>([] {
    (void)add(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}, DType::kFloat64));
  });
  EXPECT_TRUE(names_all(what, {"add", "float32", "float64", "[2,3]"}));
  what = error_of<DTypeError>([] {
    (void)matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}, DType::kFloat64));
  });
  EXPECT_TRUE(names_all(what, {"matmul", "float32", "float64", "[2,3]", "[3,2]"}));
  what = error_of<DTypeError>([] {
    (void)conv2d(Tensor::zeros({1, 1, 3, 3}), Tensor::zeros({1, 1, 2, 2}, DType::kFloat64),
                 Tensor());
  });
  EXPECT_TRUE(names_all(what, {"conv2d", "float32", "float64", "[1,1,3,3]", "[1,1,2,2]"}));
}

TEST(Errors, MatmulNamesOpAndBothShapes) {
  std::string what = error_of<ShapeError>([] {
    (void)matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}));
  });
  EXPECT_TRUE(names_all(what, {"matmul", "[2,3]", "[4,5]"}));
  what = error_of<ShapeError>([] { (void)matmul(Tensor::zeros({3}), Tensor::zeros({3, 1})); });
  EXPECT_TRUE(names_all(what, {"matmul", "[3]", "[3,1]"}));
}

TEST(Errors, Conv2dNamesOpAndBothShapes) {
  std::string what = error_of<ShapeError>([] {
    (void)conv2d(Tensor::zeros({1, 3, 5, 5}), Tensor::zeros({2, 4, 3, 3}), Tensor());
  });
  EXPECT_TRUE(names_all(what, {"conv2d", "[1,3,5,5]", "[2,4,3,3]"}));
}

TEST(Errors, ReshapeNamesBothShapes) {
  std::string what = error_of<ShapeError>([] { (void)Tensor::zeros({2, 3}).reshape({4, 2}); });
  EXPECT_TRUE(names_all(what, {"reshape", "[2,3]", "[4,2]"}));
  what = error_of<ShapeError>([] { (void)Tensor::zeros({2, 3}).reshape({-1, 4}); });
  EXPECT_TRUE(names_all(what, {"reshape", "[2,3]", "[-1,4]"}));
  EXPECT_THROW((void)Tensor::zeros({2, 3}).reshape({-1, -1}), ShapeError);
  EXPECT_THROW((void)Tensor::zeros({2, 3}).reshape({-2, -3}), ShapeError);
}

TEST(Errors, SizesThatOverflowNameTheOpAndTheShape) {
  const int64_t big = int64_t{1} << 40;
  std::string what = error_of<ShapeError>([&] { (void)Tensor::empty({big, big}); });
  EXPECT_TRUE(names_all(what, {"Tensor::empty", "[1099511627776,1099511627776]", "64-bit"}));
  // The element count fits in int64, the bytes do not.
  what = error_of<ShapeError>([&] { (void)Tensor::empty({int64_t{1} << 62}, DType::kFloat64); });
  EXPECT_TRUE(names_all(what, {"Tensor::empty", "[4611686018427387904]", "bytes"}));
  what = error_of<ShapeError>([&] { (void)Tensor::zeros({4}).reshape({big, big, -1}); });
  EXPECT_TRUE(names_all(what, {"reshape", "[1099511627776,1099511627776,-1]"}));
  what = error_of<ShapeError>([&] { (void)Tensor::zeros({1}).expand({big, big}); });
  EXPECT_TRUE(names_all(what, {"expand", "[1099511627776,1099511627776]"}));
  what = error_of<ShapeError>([&] { (void)Tensor::zeros({1}).expand({-3}); });
  EXPECT_TRUE(names_all(what, {"expand", "negative", "[-3]"}));
  // A zero dimension makes the count 0, but the strides of the rest must still fit.
  what = error_of<ShapeError>([&] { (void)Tensor::empty({0, big, big}); });
  EXPECT_TRUE(names_all(what, {"strides", "[0,1099511627776,1099511627776]"}));
}

TEST(Errors, AllocationBeyondMemoryIsAnErrorNotBadAlloc) {
  // 2^58 bytes: the size is valid, no machine has the memory.
  const std::string what =
      error_of<Error>([] { (void)Tensor::empty({int64_t{1} << 56}, DType::kFloat32); });
  EXPECT_TRUE(names_all(what, {"out of memory", "cannot allocate", "256.0 PiB"}));
}

TEST(Errors, SelectOutOfRangeNamesIndexAxisAndShape) {
  Tensor a = Tensor::zeros({3, 4});
  std::string what = error_of<IndexError>([&] { (void)a.select(0, 3); });
  EXPECT_TRUE(names_all(what, {"select", "index 3", "axis 0", "[3,4]"}));
  what = error_of<IndexError>([&] { (void)a.select(1, -5); });
  EXPECT_TRUE(names_all(what, {"select", "[3,4]"}));
  what = error_of<IndexError>([&] { (void)a.select(2, 0); });
  EXPECT_TRUE(names_all(what, {"select", "axis 2"}));
}

TEST(Errors, CrossEntropyAndEmbeddingIndicesOutOfRangeNameTheirPosition) {
  std::string what = error_of<IndexError>([] {
    (void)softmax_cross_entropy(Tensor::zeros({2, 3}), Tensor::from_vector<int64_t>({0, 3}, {2}));
  });
  EXPECT_TRUE(names_all(what, {"cross_entropy", "label 3", "row 1", "3 classes"}));
  what = error_of<ShapeError>([] {
    (void)softmax_cross_entropy(Tensor::zeros({2, 3}), Tensor::from_vector<int64_t>({0}, {1}));
  });
  EXPECT_TRUE(names_all(what, {"cross_entropy", "[2,3]", "[1]"}));
  what = error_of<IndexError>([] {
    (void)embedding(Tensor::zeros({4, 2}), Tensor::from_vector<int64_t>({0, 1, 2, 9}, {2, 2}));
  });
  EXPECT_TRUE(names_all(what, {"embedding", "index 9", "position 3", "4 rows"}));
}

TEST(Errors, AxisOutOfRangeNamesTheOp) {
  Tensor a = Tensor::zeros({2, 3});
  EXPECT_TRUE(names_all(error_of<IndexError>([&] { (void)sum(a, {2}); }), {"sum", "axis 2"}));
  EXPECT_TRUE(names_all(error_of<IndexError>([&] { (void)softmax(a, -3); }), {"softmax"}));
  EXPECT_TRUE(names_all(error_of<IndexError>([&] { (void)a.transpose(0, 5); }), {"transpose"}));
  EXPECT_TRUE(names_all(error_of<IndexError>([&] { (void)a.slice(3, 0, 1); }), {"slice"}));
}

// Every op, fed something wrong, throws a tessera::Error (and so never crashes or aborts).
TEST(Errors, NoOpCrashesOnBadInput) {
  const Tensor undefined;
  const Tensor f = Tensor::zeros({2, 3});
  const Tensor i = Tensor::zeros({2, 3}, DType::kInt64);
  const std::vector<std::function<void()>> bad = {
      [&] { (void)add(undefined, f); },
      [&] { (void)exp(undefined); },
      [&] { (void)exp(i); },
      [&] { (void)mul(i, i); },
      [&] { (void)sum(i); },
      [&] {
        (void)mean(f, {0, 0, 7});
      },
      [&] { (void)max(f, 3); },
      [&] { (void)sum_to(f, {2}); },
      [&] { (void)softmax(Tensor::scalar(1.0), 0); },
      [&] { (void)log_softmax(i, 1); },
      [&] { (void)matmul(undefined, f); },
      [&] { (void)matmul(f, f); },
      [&] { (void)matmul(i, i.t()); },
      [&] { (void)conv2d(f, f, undefined); },
      [&] { (void)max_pool2d(f); },
      [&] { (void)embedding(f, f); },
      [&] { (void)embedding(f, Tensor::from_vector<int64_t>({-1}, {1})); },
      [&] { (void)softmax_cross_entropy(f, f); },
      [&] { (void)softmax_cross_entropy(f.reshape({6}), Tensor::zeros({6}, DType::kInt64)); },
      [&] { (void)f.item(); },
      [&] {
        (void)f.at({5, 5});
      },
      [&] {
        (void)f.expand({4, 3});
      },
      [&] { (void)f.permute({1}); },
      [&] {
        (void)Tensor(f).copy_from(Tensor::zeros({3, 2}));
      },
      [&] { (void)f.t().span<float>(); },
      [&] { (void)undefined.to_vector<float>(); },
  };
  for (size_t k = 0; k < bad.size(); ++k) {
    EXPECT_THROW(bad[k](), Error) << "case " << k;
  }
}

}  // namespace
}  // namespace tessera
