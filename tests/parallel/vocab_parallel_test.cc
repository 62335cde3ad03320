// Vocabulary parallelism: the token table split by rows and the cross-entropy of logits split by
// columns, over T = 2 and 4 ranks, give the whole embedding's output and gradients and the whole
// cross-entropy's loss and gradient.
#include "tessera/parallel/vocab_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "../comm/run_ranks.h"
#include "tessera/autograd/functions.h"
#include "testing/relative_error.h"

namespace tessera::parallel {
namespace vocab_parallel_test {

using comm::ProcessGroup;
using comm::testing::run_ranks;

constexpr int64_t kVocab = 12, kDim = 4, kTokens = 5, kBatch = 3;

std::unique_ptr<nn::TokenEmbedding> make_embedding() {
  Generator gen(2);
  return std::make_unique<nn::TokenEmbedding>(kVocab, kDim, kTokens, gen);
}

Tensor make_tokens() {
  Generator gen(6);
  std::vector<int64_t> ids(kBatch * kTokens);
  for (auto& id : ids) id = static_cast<int64_t>(gen.below(kVocab));
  ids[0] = ids[1] = 3;  // a repeated token sums its rows' gradients
  return Tensor::from_vector(ids, {kBatch, kTokens});
}

Variable weighted_sum(const Variable& y) {
  Generator gen(8);
  return autograd::sum(autograd::mul(y, Variable(Tensor::randn(y.shape(), gen))));
}

using testing::relative_error;

TEST(VocabParallel, ASplitEmbeddingLooksUpAsTheWholeOne) {
  auto whole = make_embedding();
  const Variable y = (*whole)(Variable(make_tokens()));
  weighted_sum(y).backward();
  for (int ways : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << ways << " ranks");
    std::mutex mu;
    run_ranks(ways, [&](ProcessGroup& group) {
      VocabParallelEmbedding split(*make_embedding(), group);
      const Variable ys = split(Variable(make_tokens()));
      weighted_sum(ys).backward();
      const auto params = split.named_parameters();
      const int64_t rows = kVocab / ways, first = group.rank() * rows;
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_LT(relative_error(ys.data().to_vector<float>(), y.data().to_vector<float>()), 1e-6);
      EXPECT_LT(
          relative_error(
              params[0].second.grad().to_vector<float>(),
              whole->tokens().grad().slice(0, first, first + rows).contiguous().to_vector<float>()),
          1e-6);
      EXPECT_LT(relative_error(params[1].second.grad().to_vector<float>(),
                               whole->positions().grad().to_vector<float>()),
                1e-6);
    });
  }
}

TEST(VocabParallel, CrossEntropyOfSplitLogitsIsTheWholeOnes) {
  Generator gen(3);
  const int64_t n = 7;
  const Tensor logits = Tensor::randn({n, kVocab}, gen);
  std::vector<int64_t> y(n);
  for (auto& l : y) l = static_cast<int64_t>(gen.below(kVocab));
  const Tensor labels = Tensor::from_vector(y, {n});
  Variable whole(logits.clone(), /*requires_grad=*/true);
  const Variable loss = autograd::cross_entropy(whole, labels);
  loss.backward();
  for (int ways : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << ways << " ranks");
    std::mutex mu;
    run_ranks(ways, [&](ProcessGroup& group) {
      const int64_t cols = kVocab / ways, first = group.rank() * cols;
      Variable mine(logits.slice(1, first, first + cols).contiguous(), /*requires_grad=*/true);
      const Variable l = vocab_parallel_cross_entropy(mine, labels, group);
      autograd::mul_scalar(l, 2.0).backward();
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_NEAR(l.data().item(), loss.data().item(), 1e-6 * loss.data().item());
      std::vector<float> expected =
          whole.grad().slice(1, first, first + cols).contiguous().to_vector<float>();
      for (float& g : expected) g *= 2;
      EXPECT_LT(relative_error(mine.grad().to_vector<float>(), expected), 1e-5);
    });
  }
}

}  // namespace vocab_parallel_test
}  // namespace tessera::parallel
