// Pipeline parallelism: the schedules' promises (every micro-batch once forward and once backward,
// 1F1B's bound on micro-batches in flight), the stage balancer, and equivalence: a small
// transformer cut into K = 2, 3 and 4 stages, under GPipe and 1F1B, with and without
// recomputation, gives the loss and the gradients of one process on the same batch.
#include "tessera/parallel/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "../comm/run_ranks.h"
#include "tessera/autograd/functions.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/embedding.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/nn/sequential.h"
#include "tessera/nn/transformer.h"
#include "tessera/parallel/stage_balance.h"
#include "testing/relative_error.h"

namespace tessera::parallel {
namespace {

using autograd::Variable;
using comm::ProcessGroup;
using comm::testing::run_ranks;

TEST(PipelineSchedule, RunsEachMicroBatchForwardThenBackwardOnce) {
  for (auto schedule : {PipelineSchedule::kGpipe, PipelineSchedule::kOneFOneB}) {
    for (int stages : {1, 2, 4}) {
      for (int m : {1, 3, 8}) {
        for (int s = 0; s < stages; ++s) {
          std::vector<int> forward(m, -1), backward(m, -1);
          const auto ops = pipeline_schedule(schedule, s, stages, m);
          ASSERT_EQ(ops.size(), 2u * m);
          for (size_t i = 0; i < ops.size(); ++i) {
            auto& at = ops[i].kind == PipelineOp::kForward ? forward : backward;
            ASSERT_EQ(at[ops[i].micro_batch], -1) << "twice";
            at[ops[i].micro_batch] = static_cast<int>(i);
          }
          for (int i = 0; i < m; ++i) {
            EXPECT_LT(forward[i], backward[i]);
            if (i > 0) {
              EXPECT_LT(backward[i - 1], backward[i]);
            }
          }
        }
      }
    }
  }
}

int most_in_flight(const std::vector<PipelineOp>& ops) {
  int live = 0, most = 0;
  for (const auto& op : ops) {
    live += op.kind == PipelineOp::kForward ? 1 : -1;
    most = std::max(most, live);
  }
  return most;
}

TEST(PipelineSchedule, OneFOneBHoldsAtMostTheStagesLeftWhileGpipeHoldsAll) {
  for (int m : {1, 4, 16}) {
    for (int s = 0; s < 4; ++s) {
      EXPECT_EQ(most_in_flight(pipeline_schedule(PipelineSchedule::kOneFOneB, s, 4, m)),
                std::min(4 - s, m));
      EXPECT_EQ(most_in_flight(pipeline_schedule(PipelineSchedule::kGpipe, s, 4, m)), m);
    }
  }
  EXPECT_THROW((void)parse_pipeline_schedule("interleaved"), Error);
}

TEST(StageBalance, MinimisesTheCostliestStage) {
  const std::vector<double> costs{1, 1, 1, 1, 1, 1};
  EXPECT_EQ(balance_stages(costs, 3), (std::vector<size_t>{0, 2, 4, 6}));
  const std::vector<double> skewed{8, 1, 1, 1, 1, 4};
  EXPECT_EQ(balance_stages(skewed, 2), (std::vector<size_t>{0, 1, 6}));
  EXPECT_EQ(balance_stages(skewed, 6), (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_THROW((void)balance_stages(costs, 7), Error);
  const std::vector<double> negative{1, -1};
  EXPECT_THROW((void)balance_stages(negative, 1), Error);
  const std::vector<int64_t> cuts{2, 5};
  EXPECT_EQ(stage_boundaries(6, cuts), (std::vector<size_t>{0, 2, 5, 6}));
  const std::vector<int64_t> descending{4, 2};
  EXPECT_THROW((void)stage_boundaries(6, descending), Error);
  const std::vector<int64_t> past_end{6};
  EXPECT_THROW((void)stage_boundaries(6, past_end), Error);
}

constexpr int64_t kVocab = 11, kDim = 8, kTokens = 5, kBatch = 6;

// Six layers: embedding, three blocks, LayerNorm and the head.
std::vector<std::shared_ptr<nn::Module>> make_layers() {
  Generator gen(7);
  std::vector<std::shared_ptr<nn::Module>> layers{
      std::make_shared<nn::TokenEmbedding>(kVocab, kDim, kTokens, gen)};
  for (int i = 0; i < 3; ++i) {
    layers.push_back(std::make_shared<nn::TransformerBlock>(kDim, 2, 4 * kDim, true, gen));
  }
  layers.push_back(std::make_shared<nn::LayerNorm>(kDim));
  layers.push_back(std::make_shared<nn::Linear>(kDim, kVocab, gen));
  return layers;
}

struct Batch {
  Tensor tokens, targets;
};
Batch make_batch() {
  Generator gen(3);
  std::vector<int64_t> tokens(kBatch * kTokens), targets(kBatch * kTokens);
  for (auto& t : tokens) t = static_cast<int64_t>(gen.below(kVocab));
  for (auto& t : targets) t = static_cast<int64_t>(gen.below(kVocab));
  return {Tensor::from_vector(tokens, {kBatch, kTokens}),
          Tensor::from_vector(targets, {kBatch * kTokens})};
}

Variable next_token_loss(const Variable& out, const Tensor& targets) {
  return autograd::cross_entropy(autograd::reshape(out, {-1, kVocab}), targets);
}

struct Result {
  double loss = 0;
  std::vector<std::vector<float>> grads;  // in the whole model's parameter order
};

Result one_process() {
  nn::Sequential model(make_layers());
  const Batch b = make_batch();
  Variable loss = next_token_loss(model(Variable(b.tokens)), b.targets);
  loss.backward();
  Result r{loss.data().item(), {}};
  for (auto& p : model.parameters()) r.grads.push_back(p.grad().to_vector<float>());
  return r;
}

Result pipelined(int stages, PipelineOptions options) {
  const Batch b = make_batch();
  Result r;
  std::vector<std::vector<std::vector<float>>> per_stage(stages);
  std::mutex mu;
  run_ranks(stages, [&](ProcessGroup& group) {
    const auto layers = make_layers();
    const std::vector<double> costs(layers.size(), 1.0);
    const auto bounds = balance_stages(costs, stages);
    const int s = group.rank();
    nn::Sequential stage(std::vector<std::shared_ptr<nn::Module>>(
        layers.begin() + static_cast<std::ptrdiff_t>(bounds[s]),
        layers.begin() + static_cast<std::ptrdiff_t>(bounds[s + 1])));
    Pipeline pipeline(stage, group, options);
    const double loss = pipeline.train_batch(b.tokens, b.targets, next_token_loss);
    std::lock_guard<std::mutex> lock(mu);
    if (s == 0) r.loss = loss;
    for (auto& p : stage.parameters()) per_stage[s].push_back(p.grad().to_vector<float>());
  });
  for (auto& g : per_stage) r.grads.insert(r.grads.end(), g.begin(), g.end());
  return r;
}

// The worst tensor's error.
double relative_error(const std::vector<std::vector<float>>& a,
                      const std::vector<std::vector<float>>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, testing::relative_error(a[i], b.at(i)));
  }
  return worst;
}

TEST(Pipeline, EqualsOneProcessForEveryScheduleStageCountAndRecomputation) {
  const Result whole = one_process();
  for (int stages : {2, 3, 4}) {
    for (auto schedule : {PipelineSchedule::kGpipe, PipelineSchedule::kOneFOneB}) {
      for (bool recompute : {false, true}) {
        for (int m : {1, 4}) {
          SCOPED_TRACE(::testing::Message()
                       << stages << " stages, schedule " << static_cast<int>(schedule)
                       << ", recompute " << recompute << ", " << m << " micro-batches");
          const Result r =
              pipelined(stages, {.micro_batches = m, .schedule = schedule, .recompute = recompute});
          EXPECT_NEAR(r.loss, whole.loss, 1e-5 * std::abs(whole.loss));
          ASSERT_EQ(r.grads.size(), whole.grads.size());
          EXPECT_LT(relative_error(r.grads, whole.grads), 1e-5);
        }
      }
    }
  }
}

TEST(Pipeline, UnevenMicroBatchesWeighTheirRows) {
  const Result whole = one_process();
  const Result r = pipelined(2, {.micro_batches = 4});  // 6 rows: 1, 2, 1, 2
  EXPECT_NEAR(r.loss, whole.loss, 1e-5 * std::abs(whole.loss));
  EXPECT_LT(relative_error(r.grads, whole.grads), 1e-5);
}

TEST(Pipeline, ForwardGivesEveryStageTheLastStagesOutput) {
  nn::Sequential model(make_layers());
  const Batch b = make_batch();
  const auto expected = model(Variable(b.tokens)).data().to_vector<float>();
  run_ranks(3, [&](ProcessGroup& group) {
    const auto layers = make_layers();
    const std::vector<size_t> bounds{0, 2, 3, 6};
    const int s = group.rank();
    nn::Sequential stage(std::vector<std::shared_ptr<nn::Module>>(
        layers.begin() + static_cast<std::ptrdiff_t>(bounds[s]),
        layers.begin() + static_cast<std::ptrdiff_t>(bounds[s + 1])));
    Pipeline pipeline(stage, group, {});
    const Tensor out = pipeline.forward(b.tokens);
    EXPECT_EQ(out.shape(), (Shape{kBatch, kTokens, kVocab}));
    EXPECT_EQ(out.to_vector<float>(), expected);
  });
}

TEST(Pipeline, OneFOneBHoldsFewerActivationsOnTheFirstStage) {
  const Batch b = make_batch();
  for (auto schedule : {PipelineSchedule::kGpipe, PipelineSchedule::kOneFOneB}) {
    run_ranks(2, [&](ProcessGroup& group) {
      const auto layers = make_layers();
      const int s = group.rank();
      nn::Sequential stage(std::vector<std::shared_ptr<nn::Module>>(
          layers.begin() + (s == 0 ? 0 : 3), layers.begin() + (s == 0 ? 3 : 6)));
      Pipeline pipeline(stage, group, {.micro_batches = 6, .schedule = schedule});
      (void)pipeline.train_batch(b.tokens, b.targets, next_token_loss);
      if (s == 0) {
        EXPECT_EQ(pipeline.last_step().peak_in_flight,
                  schedule == PipelineSchedule::kGpipe ? 6 : 2);
      }
      EXPECT_GT(pipeline.last_step().peak_activation_bytes, 0u);
      EXPECT_GT(pipeline.last_step().compute, 0.0);
      EXPECT_LE(pipeline.last_step().compute, pipeline.last_step().seconds);
    });
  }
}

// Recomputation puts the dropout generator back: the second forward drops what the first did, so
// the gradients are those of the run that kept its activations.
TEST(Pipeline, RecomputationRedrawsTheSameDropoutMasks) {
  const Batch b = make_batch();
  std::vector<std::vector<std::vector<float>>> grads(2);
  for (bool recompute : {false, true}) {
    std::mutex mu;
    run_ranks(2, [&](ProcessGroup& group) {
      Generator masks(11);
      auto layers = make_layers();
      layers.insert(layers.begin() + 4, std::make_shared<nn::Dropout>(0.3, masks));
      layers.insert(layers.begin() + 2, std::make_shared<nn::Dropout>(0.3, masks));
      const int s = group.rank();
      nn::Sequential stage(std::vector<std::shared_ptr<nn::Module>>(
          layers.begin() + (s == 0 ? 0 : 4), s == 0 ? layers.begin() + 4 : layers.end()));
      Pipeline pipeline(stage, group,
                        {.micro_batches = 3, .recompute = recompute, .dropout = &masks});
      (void)pipeline.train_batch(b.tokens, b.targets, next_token_loss);
      std::lock_guard<std::mutex> lock(mu);
      if (s == 0) {
        for (auto& p : stage.parameters()) grads[recompute].push_back(p.grad().to_vector<float>());
      }
    });
  }
  ASSERT_FALSE(grads[0].empty());
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(Pipeline, AShortBatchMakesOneMicroBatchPerRow) {
  const Result whole = one_process();
  const Result r = pipelined(3, {.micro_batches = kBatch + 3});
  EXPECT_NEAR(r.loss, whole.loss, 1e-5 * std::abs(whole.loss));
  EXPECT_LT(relative_error(r.grads, whole.grads), 1e-5);
}

}  // namespace
}  // namespace tessera::parallel
