#include "tessera/tensor/embedding.h"

#include <vector>

#include <gtest/gtest.h>

#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

TEST(Embedding, GathersRowsForIndicesOfAnyShape) {
  Tensor weight = Tensor::arange(12, DType::kFloat32).reshape({4, 3});
  Tensor idx = Tensor::from_vector<int64_t>({3, 0, 3, 1}, {2, 2});
  Tensor out = embedding(weight, idx);
  ASSERT_EQ(out.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{9, 10, 11, 0, 1, 2, 9, 10, 11, 3, 4, 5}));
  Tensor idx32 = Tensor::from_vector<int32_t>({2}, {1});
  EXPECT_EQ(embedding(weight, idx32).to_vector<float>(), (std::vector<float>{6, 7, 8}));
  // A scalar index gives one row; a transposed weight is read correctly.
  Tensor scalar = Tensor::full({}, 1, DType::kInt64);
  EXPECT_EQ(embedding(weight, scalar).shape(), (Shape{3}));
  Tensor wt = Tensor::arange(12, DType::kFloat64).reshape({3, 4}).t();  // [4, 3]
  EXPECT_EQ(embedding(wt, idx32).to_vector<double>(), (std::vector<double>{2, 6, 10}));
}

TEST(Embedding, BackwardAddsTheGradientsOfRepeatedIndices) {
  Tensor idx = Tensor::from_vector<int64_t>({2, 0, 2, 2}, {4});
  Tensor grad = Tensor::from_vector<double>({1, 2, 10, 20, 100, 200, 1000, 2000}, {4, 2});
  Tensor g = embedding_backward(grad, idx, 3);
  EXPECT_EQ(g.shape(), (Shape{3, 2}));
  EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{10, 20, 0, 0, 1101, 2202}));
  // A non-contiguous gradient of a 2-D index tensor.
  Tensor idx2 = Tensor::from_vector<int32_t>({1, 1}, {1, 2});
  Tensor grad2 = Tensor::from_vector<double>({1, 3, 2, 4}, {2, 1, 2}).permute({1, 2, 0});
  EXPECT_EQ(embedding_backward(grad2, idx2, 2).to_vector<double>(),
            (std::vector<double>{0, 0, 4, 6}));
}

TEST(Embedding, IndexOutOfRangeThrowsIndexErrorNamingIndexPositionAndRows) {
  Tensor weight = Tensor::zeros({5, 2});
  for (int64_t bad : {5, -1, 1000}) {
    Tensor idx = Tensor::from_vector<int64_t>({0, 1, bad}, {3});
    try {
      (void)embedding(weight, idx);
      ADD_FAILURE() << "no exception for " << bad;
    } catch (const IndexError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("embedding"), std::string::npos) << what;
      EXPECT_NE(what.find("index " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find("position 2"), std::string::npos) << what;
      EXPECT_NE(what.find("5 rows"), std::string::npos) << what;
    }
  }
  EXPECT_THROW(embedding_backward(Tensor::zeros({1, 2}), Tensor::from_vector<int64_t>({3}, {1}), 3),
               IndexError);
}

TEST(Embedding, RejectsBadShapesAndDtypes) {
  EXPECT_THROW(embedding(Tensor::zeros({5}), Tensor::zeros({2}, DType::kInt64)), ShapeError);
  EXPECT_THROW(embedding(Tensor::zeros({5, 2}), Tensor::zeros({2})), DTypeError);
  EXPECT_THROW(embedding_backward(Tensor::zeros({3, 2}), Tensor::zeros({2}, DType::kInt64), 4),
               ShapeError);
}

}  // namespace
}  // namespace tessera
