#include "tessera/parallel/zero_optimizer.h"

#include <gtest/gtest.h>

#include <mutex>

#include "comm/run_ranks.h"
#include "parallel/equivalence.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/sgd.h"
#include "tessera/tensor/storage.h"

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
    // Small buckets: stage 2 reduces several during backward, some across shard boundaries.
    ZeroOptimizer zero(*model, group, make,
                       {.stage = stage, .bucket_bytes = 64, .first_bucket_bytes = 32});
    if (stage == 2) {
      EXPECT_GT(zero.num_buckets(), 2);
    }
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

std::unique_ptr<optim::Optimizer> plain_sgd(std::vector<Variable> params) {
  return std::make_unique<optim::Sgd>(std::move(params), optim::SgdOptions{.lr = 0.1});
}

// Tensor bytes live in the process (both ranks' threads) at the same point on every rank.
size_t live_bytes_at_barrier(comm::ProcessGroup& group) {
  group.barrier()->wait();
  const size_t bytes = live_storage_bytes();
  group.barrier()->wait();
  return bytes;
}

TEST(Zero, StageTwoKeepsOnlyItsGradientShardBetweenSteps) {
  // Bytes that constructing ZeroOptimizer added, and that one step left behind, on 2 ranks.
  struct Held {
    int64_t constructed = 0;
    int64_t after_step = 0;
  };
  auto measure = [](int stage) {
    Held held;
    comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
      auto model = make_model(1, 64);
      StepData d = step_data(0);
      const Tensor x = d.x.slice(0, group.rank() * 6, group.rank() * 6 + 6).contiguous();
      const Tensor y = d.y.slice(0, group.rank() * 6, group.rank() * 6 + 6).contiguous();
      const size_t start = live_bytes_at_barrier(group);
      ZeroOptimizer zero(*model, group, plain_sgd,
                         {.stage = stage, .bucket_bytes = 256, .first_bucket_bytes = 64});
      const size_t constructed = live_bytes_at_barrier(group);
      for (int step = 0; step < 2; ++step) {
        zero.zero_grad();
        autograd::cross_entropy((*model)(Variable(x)), y).backward();
        if (stage == 2) {
          // Handed to the buckets while backward ran, not after it.
          for (auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined()) << p.name();
        }
        zero.step();
      }
      const size_t after = live_bytes_at_barrier(group);
      if (group.rank() == 0) {
        held.constructed = static_cast<int64_t>(constructed) - static_cast<int64_t>(start);
        held.after_step = static_cast<int64_t>(after) - static_cast<int64_t>(constructed);
      }
      if (stage == 2) {
        for (auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined()) << p.name();
      }
    });
    return held;
  };
  const int64_t parameters = make_model(1, 64)->parameter_count();
  const Held one = measure(1);
  const Held two = measure(2);
  // Stage 2 sets aside each rank's gradient shard, half the parameters: on two ranks, one whole
  // gradient's worth. Nothing more stays after a step.
  EXPECT_EQ(two.constructed - one.constructed, parameters * 4);
  EXPECT_EQ(two.after_step, 0);
  // Stage 1 keeps every parameter's whole gradient on each rank until zero_grad().
  EXPECT_GE(one.after_step, 2 * parameters * 4);
}

TEST(Zero, StageTwoCountsAParameterWithoutGradientAsZeroLikeStageOne) {
  // The loss uses the first layer only: the second layer's buckets fill in step(), with zeros.
  auto run = [](int stage) {
    std::vector<std::vector<float>> result;
    comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
      auto model = make_model(1);
      ZeroOptimizer zero(*model, group, sgd_momentum,
                         {.stage = stage, .bucket_bytes = 64, .first_bucket_bytes = 32});
      for (int s = 0; s < 3; ++s) {
        StepData d = step_data(s);
        zero.zero_grad();
        Variable hidden = (*(*model)[0])(
            Variable(d.x.slice(0, group.rank() * 6, group.rank() * 6 + 6).contiguous()));
        autograd::mean(autograd::mul(hidden, hidden)).backward();
        zero.step();
      }
      if (group.rank() == 0) result = values(*model);
    });
    return result;
  };
  const auto one = run(1);
  EXPECT_LT(max_relative_error(run(2), one), 1e-6);
  EXPECT_EQ(run(2).back(), make_model(1)->parameters().back().data().to_vector<float>())
      << "the unused bias keeps its value";
}

TEST(Zero, StageTwoRefusesASecondBackwardBeforeStep) {
  comm::testing::run_ranks(2, [](comm::ProcessGroup& group) {
    auto model = make_model(1);
    ZeroOptimizer zero(*model, group, sgd_momentum, {.stage = 2});
    StepData d = step_data(0);
    zero.zero_grad();
    autograd::cross_entropy((*model)(Variable(d.x)), d.y).backward();
    try {
      autograd::cross_entropy((*model)(Variable(d.x)), d.y).backward();
      ADD_FAILURE() << "expected ValueError";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("second gradient before step()"), std::string::npos)
          << e.what();
    }
  });
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
