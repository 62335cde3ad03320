#include "tessera/parallel/zero_optimizer.h"

#include <gtest/gtest.h>

#include <mutex>

#include "comm/run_ranks.h"
#include "parallel/equivalence.h"
#include "tessera/optim/adam.h"

namespace tessera::parallel {
namespace {

std::unique_ptr<optim::Optimizer> adam(std::vector<Variable> params) {
  return std::make_unique<optim::Adam>(std::move(params), optim::AdamOptions{.lr = 0.01});
}

// n ranks with ZeRO at `stage`, each on its slice of every global batch.
std::vector<std::vector<float>> zero_run(int n, int stage, const OptimizerFactory& make) {
  std::vector<std::vector<float>> result;
  comm::testing::run_ranks(n, [&](comm::ProcessGroup& group) {
    auto model = make_model(group.rank() == 0 ? 1 : 99);  // rank 0's parameters win
    ZeroOptimizer zero(*model, group, make, {.stage = stage});
    const int64_t local = kGlobalBatch / n;
    for (int s = 0; s < kSteps; ++s) {
      StepData d = step_data(s);
      zero.zero_grad();
      int64_t begin = group.rank() * local;
      Variable logits = (*model)(Variable(d.x.slice(0, begin, begin + local).contiguous()));
      autograd::cross_entropy(logits, d.y.slice(0, begin, begin + local).contiguous()).backward();
      zero.step();
    }
    if (group.rank() == 0) result = values(*model);
  });
  return result;
}

struct ZeroCase {
  int ranks;
  int stage;
};

class ZeroEquivalence : public ::testing::TestWithParam<ZeroCase> {};

TEST_P(ZeroEquivalence, MatchesOneProcessWithSgdMomentum) {
  auto [n, stage] = GetParam();
  EXPECT_LT(max_relative_error(zero_run(n, stage, sgd_momentum), reference(sgd_momentum)), 1e-5);
}

TEST_P(ZeroEquivalence, MatchesOneProcessWithAdam) {
  auto [n, stage] = GetParam();
  EXPECT_LT(max_relative_error(zero_run(n, stage, adam), reference(adam)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Ranks, ZeroEquivalence,
                         ::testing::Values(ZeroCase{2, 1}, ZeroCase{3, 1}, ZeroCase{4, 1},
                                           ZeroCase{2, 2}, ZeroCase{3, 2}, ZeroCase{4, 2}),
                         [](const auto& info) {
                           return "stage" + std::to_string(info.param.stage) + "_" +
                                  std::to_string(info.param.ranks) + "ranks";
                         });

TEST(Zero, StateIsAboutOneNthOfThePlainOptimizers) {
  auto model = make_model(1);
  auto plain = adam(model->parameters());
  StepData d = step_data(0);
  autograd::cross_entropy((*model)(Variable(d.x)), d.y).backward();
  plain->step();
  int64_t plain_bytes = 0;
  for (size_t i = 0; i < model->parameters().size(); ++i) {
    for (auto& b : plain->state(i).buffers) plain_bytes += static_cast<int64_t>(b.nbytes());
  }
  for (int n : {2, 4}) {
    comm::testing::run_ranks(n, [&](comm::ProcessGroup& group) {
      auto m = make_model(1);
      ZeroOptimizer zero(*m, group, adam, {.stage = 1});
      autograd::cross_entropy((*m)(Variable(d.x)), d.y).backward();
      zero.step();
      const int64_t per_rank = (plain_bytes + n - 1) / n;
      // Shards are ceil(P / N) long; the last one may be shorter.
      EXPECT_LE(zero.state_bytes(), per_rank + 2 * 4 * n) << n << " ranks, rank " << group.rank();
      if (group.rank() == 0) {
        EXPECT_GE(zero.state_bytes(), plain_bytes / n) << n << " ranks";
      }
    });
  }
}

// The whole state, concatenated across ranks in rank order, for each buffer.
std::vector<std::vector<float>> gather_state(const std::vector<std::string>& shards,
                                             int new_ranks) {
  std::vector<std::vector<float>> whole;
  std::mutex m;
  std::vector<std::vector<std::vector<float>>> per_rank(static_cast<size_t>(new_ranks));
  comm::testing::run_ranks(new_ranks, [&](comm::ProcessGroup& group) {
    auto model = make_model(1);
    ZeroOptimizer zero(*model, group, adam, {.stage = 2});
    zero.load_shards(shards);
    std::vector<std::vector<float>> mine;
    for (auto& b : zero.inner().state(0).buffers) mine.push_back(b.to_vector<float>());
    EXPECT_EQ(zero.inner().state(0).step, 3);
    std::lock_guard lock(m);
    per_rank[static_cast<size_t>(group.rank())] = mine;
  });
  for (auto& rank : per_rank) {
    if (whole.empty()) whole.resize(rank.size());
    for (size_t b = 0; b < rank.size(); ++b)
      whole[b].insert(whole[b].end(), rank[b].begin(), rank[b].end());
  }
  return whole;
}

TEST(Zero, ShardsWrittenByFourRanksLoadOnTwoAndOne) {
  std::vector<std::string> shards(4);
  comm::testing::run_ranks(4, [&](comm::ProcessGroup& group) {
    auto model = make_model(1);
    ZeroOptimizer zero(*model, group, adam, {.stage = 2});
    for (int s = 0; s < 3; ++s) {
      StepData d = step_data(s);
      zero.zero_grad();
      int64_t begin = group.rank() * 3;
      autograd::cross_entropy((*model)(Variable(d.x.slice(0, begin, begin + 3).contiguous())),
                              d.y.slice(0, begin, begin + 3).contiguous())
          .backward();
      zero.step();
    }
    shards[static_cast<size_t>(group.rank())] = zero.save_shard();
  });
  auto on_four = gather_state(shards, 4);
  ASSERT_EQ(on_four.size(), 2u);  // Adam: two moments
  EXPECT_EQ(gather_state(shards, 2), on_four);
  EXPECT_EQ(gather_state(shards, 1), on_four);
  // A missing shard is refused, not silently zero-filled.
  std::vector<std::string> three(shards.begin(), shards.end() - 1);
  comm::testing::run_ranks(1, [&](comm::ProcessGroup& group) {
    auto model = make_model(1);
    ZeroOptimizer zero(*model, group, adam, {.stage = 1});
    EXPECT_THROW(zero.load_shards(three), FormatError);
  });
}

}  // namespace
}  // namespace tessera::parallel
