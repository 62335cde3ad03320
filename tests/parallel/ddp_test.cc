#include "tessera/parallel/distributed_data_parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "comm/run_ranks.h"
#include "parallel/equivalence.h"
#include "tessera/autograd/functions.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/sgd.h"

namespace tessera::parallel {
namespace {

using autograd::Variable;

// n ranks, each on its slice of the global batch, split into `micro` micro-steps.
std::vector<std::vector<float>> data_parallel(int n, int micro, GradCompression compression) {
  std::vector<std::vector<float>> result;
  comm::testing::run_ranks(n, [&](comm::ProcessGroup& group) {
    // Rank 0's initial parameters win: the others start from another seed on purpose.
    auto model = make_model(group.rank() == 0 ? 1 : 99);
    DistributedDataParallel ddp(
        *model, group, {.bucket_bytes = 256, .first_bucket_bytes = 64, .compression = compression});
    EXPECT_GT(ddp.num_buckets(), 1);
    optim::Sgd opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
    const int64_t local = kGlobalBatch / n;
    const int64_t part = local / micro;
    for (int s = 0; s < kSteps; ++s) {
      StepData d = step_data(s);
      opt.zero_grad();
      for (int m = 0; m < micro; ++m) {
        ddp.set_sync(m == micro - 1);
        int64_t begin = group.rank() * local + m * part;
        Variable logits = (*model)(Variable(d.x.slice(0, begin, begin + part).contiguous()));
        Variable loss =
            autograd::cross_entropy(logits, d.y.slice(0, begin, begin + part).contiguous());
        autograd::mul_scalar(loss, 1.0 / micro).backward();
      }
      ddp.synchronize();
      opt.step();
    }
    if (group.rank() == 0) result = values(*model);
  });
  return result;
}

class DdpEquivalence : public ::testing::TestWithParam<int> {};

TEST_P(DdpEquivalence, MatchesOneProcessOnTheGlobalBatch) {
  double err =
      max_relative_error(data_parallel(GetParam(), 1, GradCompression::kNone), reference());
  EXPECT_LT(err, 1e-5) << GetParam() << " ranks";
}

TEST_P(DdpEquivalence, MatchesWithGradientAccumulation) {
  if (kGlobalBatch / GetParam() % 2 != 0) GTEST_SKIP() << "local batch does not split in two";
  double err =
      max_relative_error(data_parallel(GetParam(), 2, GradCompression::kNone), reference());
  EXPECT_LT(err, 1e-5) << GetParam() << " ranks";
}

// bfloat16 keeps 8 bits of mantissa: each gradient is rounded by up to 2^-9 relative before the
// float32 sum; over 20 steps the parameters drift by well under 1% of their scale.
TEST_P(DdpEquivalence, MatchesWithinBFloat16RoundingWhenCompressed) {
  double err =
      max_relative_error(data_parallel(GetParam(), 1, GradCompression::kBFloat16), reference());
  EXPECT_LT(err, 5e-3) << GetParam() << " ranks";
  EXPECT_GT(err, 0.0) << "compression had no effect: is it on?";
}

INSTANTIATE_TEST_SUITE_P(Ranks, DdpEquivalence, ::testing::Values(2, 3, 4),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

TEST(Ddp, DifferentModelsAreNamedNotHung) {
  int errors = 0;
  std::mutex m;
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    auto model = make_model(1, group.rank() == 0 ? 8 : 5);
    try {
      DistributedDataParallel ddp(*model, group);
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(
          what.find("0.weight [8,6] float32' on rank 0 but '0.weight [5,6] float32' on rank 1"),
          std::string::npos)
          << what;
      std::lock_guard lock(m);
      ++errors;
    }
  });
  EXPECT_EQ(errors, 2);
}

TEST(Ddp, UnusedParameterIsNamedOrZeroedOnRequest) {
  comm::testing::run_ranks(2, [&](comm::ProcessGroup& group) {
    Generator gen(3);
    nn::Linear used(4, 2, gen), unused(4, 2, gen);
    nn::Sequential both(
        {std::make_shared<nn::Linear>(4, 2, gen), std::make_shared<nn::Linear>(2, 2, gen)});
    auto run_step = [&](DistributedDataParallel& ddp) {
      // Only the first layer is used: the second one's parameters get no gradient.
      Variable y = (*both[0])(Variable(Tensor::ones({3, 4})));
      autograd::sum(y).backward();
      ddp.synchronize();
    };
    {
      DistributedDataParallel ddp(both, group);
      try {
        run_step(ddp);
        ADD_FAILURE() << "expected an error naming the unused parameters";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("1.weight, 1.bias"), std::string::npos) << e.what();
      }
    }
    both.zero_grad();
    DistributedDataParallel tolerant(both, group, {.find_unused_parameters = true});
    run_step(tolerant);
    EXPECT_EQ(both.parameters()[2].grad().to_vector<float>(), std::vector<float>(4, 0.0f));
    EXPECT_FLOAT_EQ(both.parameters()[1].grad().at({0}), 3.0f);  // bias grad: 3 rows of ones
  });
}

}  // namespace
}  // namespace tessera::parallel
