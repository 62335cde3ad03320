// Trains an MLP on Fashion-MNIST as one rank of a data-parallel job: each rank holds a replica of
// the model and reads its own slice of every batch, and DDP averages the gradients, so all ranks
// take the same steps and end with the same parameters.
// Build: make build; run: build/release/tessera launch --nproc 2 build/release/examples/train_ddp
// [steps] (default: one epoch).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>

#include "tessera/autograd/functions.h"
#include "tessera/comm/init.h"
#include "tessera/core/crc32.h"
#include "tessera/data/builtin.h"
#include "tessera/data/data_loader.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/sgd.h"
#include "tessera/parallel/distributed_data_parallel.h"

using namespace tessera;
using autograd::Variable;

namespace {

constexpr int64_t kGlobalBatch = 128;
constexpr int64_t kLogEvery = 50;

// Collective: every rank calls it at the same point.
template <typename T>
T reduce_over_ranks(comm::ProcessGroup& group, T value, comm::ReduceOp op) {
  std::array<T, 1> v{value};
  group.allreduce(std::span<T>(v), op)->wait();
  return v[0];
}

uint32_t parameters_crc32(const nn::Module& model) {
  uint32_t crc = 0;
  for (const Variable& p : model.parameters()) {
    const Tensor& t = p.data();
    crc = crc32({static_cast<const std::byte*>(t.raw_data()), t.nbytes()}, crc);
  }
  return crc;
}

int train(int64_t max_steps) {
  // Backend and timeout from the environment the launcher sets, else the defaults.
  const comm::InitOptions options;
  std::unique_ptr<comm::ProcessGroup> group = comm::init_from_env(options);
  const int rank = group->rank();
  auto train = data::load_builtin("fashion-mnist:train");
  Generator gen(1);
  nn::Sequential model({std::make_shared<nn::Flatten>(),
                        std::make_shared<nn::Linear>(784, 512, gen), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(512, 10, gen)});
  // Starts every replica from rank 0's parameters.
  parallel::DistributedDataParallel ddp(model, *group);
  optim::Sgd opt(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  // One seed on every rank: the same shuffled order, of which each rank reads its own part.
  data::DataLoader loader(*train,
                          data::DistributedSampler(train->size(), rank, group->size(), {.seed = 1}),
                          {.batch_size = kGlobalBatch / group->size()});
  loader.set_epoch(0);
  int64_t steps = 0;
  double last_loss = 0.0;
  while (auto batch = loader.next()) {
    opt.zero_grad();
    Variable loss = autograd::cross_entropy(model(Variable(batch->x)), batch->y);
    loss.backward();
    ddp.synchronize();
    opt.step();
    ++steps;
    last_loss = loss.data().item();
    // Every rank has the same number of batches, so all of them take part in this allreduce.
    if (steps % kLogEvery == 0) {
      const double mean = reduce_over_ranks(*group, last_loss, comm::ReduceOp::kAvg);
      if (rank == 0) std::printf("step %lld: loss %.4f\n", static_cast<long long>(steps), mean);
    }
    if (steps == max_steps) break;
  }
  const double mean = reduce_over_ranks(*group, last_loss, comm::ReduceOp::kAvg);
  if (rank == 0) std::printf("%lld steps: loss %.4f\n", static_cast<long long>(steps), mean);

  // DDP keeps the replicas equal; the ranks compare checksums so that a difference fails the job.
  const uint32_t crc = parameters_crc32(model);
  std::printf("rank %d: parameters crc32 %08x\n", rank, crc);
  const int64_t lowest = reduce_over_ranks<int64_t>(*group, crc, comm::ReduceOp::kMin);
  const int64_t highest = reduce_over_ranks<int64_t>(*group, crc, comm::ReduceOp::kMax);
  group->shutdown();
  if (lowest != highest) {
    std::fprintf(stderr, "rank %d: the ranks' parameters differ (crc32 %08llx to %08llx)\n", rank,
                 static_cast<long long>(lowest), static_cast<long long>(highest));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t max_steps = argc > 1 ? std::atoll(argv[1]) : 0;
  // Line-buffered: the launcher shows each line as it is printed, prefixed with its rank.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    return train(max_steps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_ddp: %s\n", e.what());
    return 1;
  }
}
