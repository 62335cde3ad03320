// Tensor parallelism: a transformer block split over T = 2 and 4 ranks (heads and hidden units
// dealt out, Megatron's column- and row-parallel pairs) computes the whole block's output, and
// each rank's gradients are the whole block's gradients of its slice (the replicated LayerNorms'
// and biases' whole), as are the input's.
#include "tessera/parallel/tensor_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "../comm/run_ranks.h"
#include "tessera/autograd/functions.h"
#include "testing/relative_error.h"

namespace tessera::parallel {
namespace tensor_parallel_test {

using comm::ProcessGroup;
using comm::testing::run_ranks;

constexpr int64_t kDim = 16, kHeads = 4, kHidden = 32, kBatch = 3, kTokens = 5;

std::unique_ptr<nn::TransformerBlock> make_block() {
  Generator gen(9);
  return std::make_unique<nn::TransformerBlock>(kDim, kHeads, kHidden, true, gen);
}

Tensor make_input() {
  Generator gen(4);
  return Tensor::randn({kBatch, kTokens, kDim}, gen);
}

// A loss that weighs every output differently, so that no gradient is symmetric by chance.
Variable weighted_sum(const Variable& y) {
  Generator gen(5);
  return autograd::sum(autograd::mul(y, Variable(Tensor::randn(y.shape(), gen))));
}

using testing::relative_error;

// Rows [begin, end) of each of `parts` equal blocks of a [rows, cols] gradient, or of a vector.
std::vector<float> block_rows(const Tensor& whole, int parts, int rank, int ways) {
  const int64_t block = whole.size(0) / parts, mine = block / ways;
  std::vector<float> out;
  for (int p = 0; p < parts; ++p) {
    const int64_t begin = p * block + rank * mine;
    const auto v = whole.slice(0, begin, begin + mine).contiguous().to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<float> columns(const Tensor& whole, int rank, int ways) {
  const int64_t mine = whole.size(1) / ways;
  return whole.slice(1, rank * mine, (rank + 1) * mine).contiguous().to_vector<float>();
}

TEST(TensorParallel, ABlockSplitOverRanksComputesTheWholeBlock) {
  auto whole = make_block();
  Variable x(make_input(), /*requires_grad=*/true);
  const Variable y = (*whole)(x);
  weighted_sum(y).backward();
  std::map<std::string, Tensor> grads;
  for (const auto& [name, p] : whole->named_parameters()) grads[name] = p.grad();

  for (int ways : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << ways << " ranks");
    std::mutex mu;
    run_ranks(ways, [&](ProcessGroup& group) {
      const int r = group.rank();
      TensorParallelTransformerBlock split(*make_block(), group);
      Variable xs(make_input(), /*requires_grad=*/true);
      const Variable ys = split(xs);
      weighted_sum(ys).backward();
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_LT(relative_error(ys.data().to_vector<float>(), y.data().to_vector<float>()), 1e-5);
      EXPECT_LT(relative_error(xs.grad().to_vector<float>(), x.grad().to_vector<float>()), 1e-5);
      const auto params = split.named_parameters();
      ASSERT_EQ(params.size(), grads.size());
      for (const auto& [name, p] : params) {
        SCOPED_TRACE(name);
        const Tensor& g = grads.at(name);
        std::vector<float> expected;
        if (name == "attention.qkv.weight" || name == "attention.qkv.bias") {
          expected = block_rows(g, 3, r, ways);
        } else if (name == "fc.weight" || name == "fc.bias") {
          expected = block_rows(g, 1, r, ways);
        } else if (name == "attention.proj.weight" || name == "proj.weight") {
          expected = columns(g, r, ways);
        } else {  // LayerNorms and the row-parallel biases: whole on every rank
          expected = g.to_vector<float>();
        }
        EXPECT_LT(relative_error(p.grad().to_vector<float>(), expected), 1e-5);
      }
    });
  }
}

TEST(TensorParallel, SplitWeightsAreAboutOneTthOfTheWhole) {
  const auto whole = make_block();
  const int64_t all = whole->parameter_count();
  run_ranks(4, [&](ProcessGroup& group) {
    TensorParallelTransformerBlock split(*make_block(), group);
    // The LayerNorms (4 x 16) and the two row-parallel biases (2 x 16) stay whole.
    EXPECT_EQ(split.parameter_count(), (all - 6 * kDim) / 4 + 6 * kDim);
  });
}

TEST(TensorParallel, RefusesASplitThatDoesNotDivide) {
  run_ranks(3, [&](ProcessGroup& group) {
    EXPECT_THROW(TensorParallelTransformerBlock(*make_block(), group), ValueError);
  });
}

}  // namespace tensor_parallel_test
}  // namespace tessera::parallel
