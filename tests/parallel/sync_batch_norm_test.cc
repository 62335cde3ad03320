#include "tessera/parallel/sync_batch_norm.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "comm/run_ranks.h"
#include "parallel/equivalence.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/conv2d.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/nn/sequential.h"
#include "tessera/parallel/distributed_data_parallel.h"

namespace tessera::parallel {
namespace {

constexpr int kBatchNormSteps = 5;

// Batch normalisation of [features] ([N, 8] after a linear layer) or of images ([N, 3, 4, 4]
// after a convolution).
enum class Input { kFeatures, kImages };

std::shared_ptr<nn::Sequential> batchnorm_model(Input input) {
  Generator gen(1);
  if (input == Input::kFeatures) {
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(6, 8, gen), std::make_shared<nn::BatchNorm>(8),
        std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(8, 3, gen)});
  }
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(2, 3, 3, gen, nn::Conv2dOptions{.padding = 1}),
      std::make_shared<nn::BatchNorm>(3), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(3 * 4 * 4, 3, gen)});
}

StepData batchnorm_step(Input input, int step) {
  StepData d = step_data(step);
  if (input == Input::kImages) {
    Generator gen(2000 + static_cast<uint64_t>(step));
    d.x = Tensor::randn({kGlobalBatch, 2, 4, 4}, gen);
  }
  return d;
}

// Parameters, then running statistics, after kBatchNormSteps steps of SGD with momentum on
// `ranks` ranks (DDP, each rank on its slice of every global batch); one process without a group.
std::vector<std::vector<float>> train(Input input, int ranks, bool sync) {
  std::vector<std::vector<float>> result;
  auto run = [&](comm::ProcessGroup* group) {
    auto model = batchnorm_model(input);
    if (group && sync) convert_sync_batchnorm(*model, *group);
    std::unique_ptr<DistributedDataParallel> ddp;
    if (group) ddp = std::make_unique<DistributedDataParallel>(*model, *group);
    auto opt = sgd_momentum(model->parameters());
    const int rank = group ? group->rank() : 0;
    const int64_t local = kGlobalBatch / ranks;
    for (int s = 0; s < kBatchNormSteps; ++s) {
      StepData d = batchnorm_step(input, s);
      opt->zero_grad();
      const int64_t begin = rank * local;
      Variable logits = (*model)(Variable(d.x.slice(0, begin, begin + local).contiguous()));
      autograd::cross_entropy(logits, d.y.slice(0, begin, begin + local).contiguous()).backward();
      if (ddp) ddp->synchronize();
      opt->step();
    }
    if (rank != 0) return;
    result = values(*model);
    for (auto& [name, buffer] : model->named_buffers()) result.push_back(buffer.to_vector<float>());
  };
  if (ranks == 1) {
    run(nullptr);
  } else {
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) { run(&group); });
  }
  return result;
}

struct SyncCase {
  Input input;
  int ranks;
};

class SyncBatchNormEquivalence : public ::testing::TestWithParam<SyncCase> {};

TEST_P(SyncBatchNormEquivalence, MatchesOneProcessOnTheGlobalBatchRunningStatisticsIncluded) {
  const auto [input, ranks] = GetParam();
  const auto one = train(input, 1, false);
  const auto synced = train(input, ranks, true);
  ASSERT_EQ(synced.size(), one.size());
  EXPECT_LT(max_relative_error(synced, one), 1e-5);
  // The running statistics alone (the last two entries), which the parameters do not see.
  const std::vector<std::vector<float>> one_stats(one.end() - 2, one.end());
  const std::vector<std::vector<float>> synced_stats(synced.end() - 2, synced.end());
  EXPECT_LT(max_relative_error(synced_stats, one_stats), 1e-5);
}

TEST_P(SyncBatchNormEquivalence, WithoutSyncEachRankNormalisesByItsOwnBatch) {
  const auto [input, ranks] = GetParam();
  EXPECT_GT(max_relative_error(train(input, ranks, false), train(input, 1, false)), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Ranks, SyncBatchNormEquivalence,
    ::testing::Values(SyncCase{Input::kFeatures, 2}, SyncCase{Input::kFeatures, 4},
                      SyncCase{Input::kImages, 2}, SyncCase{Input::kImages, 4}),
    [](const auto& info) {
      return std::string(info.param.input == Input::kFeatures ? "features" : "images") + "_" +
             std::to_string(info.param.ranks) + "ranks";
    });

TEST(SyncBatchNorm, AllreduceSumSendsTheSumOfTheGradientsBack) {
  comm::testing::run_ranks(3, [](comm::ProcessGroup& group) {
    const auto r = static_cast<float>(group.rank());
    Variable x(Tensor::from_vector<float>({r, 2 * r}, {2}), true);
    Variable y = allreduce_sum(x, group);
    EXPECT_EQ(y.data().to_vector<float>(), (std::vector<float>{3.0f, 6.0f}));
    // Rank r's loss is (r + 1) * sum(y): every rank's x reaches every loss.
    autograd::mul_scalar(autograd::sum(y), r + 1.0).backward();
    EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{6.0f, 6.0f}));
  });
}

TEST(SyncBatchNorm, EvaluationUsesTheRunningStatisticsWithoutCommunicating) {
  comm::testing::run_ranks(2, [](comm::ProcessGroup& group) {
    auto model = batchnorm_model(Input::kFeatures);
    convert_sync_batchnorm(*model, group);
    model->eval();
    // Only rank 0 evaluates: a collective would wait for rank 1 until the timeout.
    if (group.rank() == 0) {
      Variable out = (*model)(Variable(Tensor::ones({1, 6})));
      EXPECT_EQ(out.shape(), (Shape{1, 3}));
    }
  });
}

}  // namespace
}  // namespace tessera::parallel
