// Trains an MLP on Fashion-MNIST with the library directly: model, loader, optimizer, loop.
// Build: make build; run: build/release/examples/train_mlp [epochs [steps per epoch]]
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/data/builtin.h"
#include "tessera/data/data_loader.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/sgd.h"
#include "tessera/tensor/reduce.h"

using namespace tessera;
using autograd::Variable;

int main(int argc, char** argv) {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 3;
  // Fewer steps per epoch for a quick run (0, the default: the whole epoch).
  const int64_t max_steps = argc > 2 ? std::atoll(argv[2]) : 0;
  auto train = data::load_builtin("fashion-mnist:train");
  auto test = data::load_builtin("fashion-mnist:test");
  Generator gen(1);
  nn::Sequential model({std::make_shared<nn::Flatten>(),
                        std::make_shared<nn::Linear>(784, 512, gen), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(512, 10, gen)});
  optim::Sgd opt(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  data::DataLoader loader(*train, data::DistributedSampler(train->size(), 0, 1, {.seed = 1}),
                          {.batch_size = 128});
  data::DataLoader test_loader(*test,
                               data::DistributedSampler(test->size(), 0, 1, {.shuffle = false}),
                               {.batch_size = 1000});
  for (int epoch = 0; epoch < epochs; ++epoch) {
    loader.set_epoch(epoch);
    int64_t steps = 0;
    while (auto batch = loader.next()) {
      opt.zero_grad();
      Variable loss = autograd::cross_entropy(model(Variable(batch->x)), batch->y);
      loss.backward();
      opt.step();
      if (++steps == max_steps) break;
    }
    autograd::NoGradGuard no_grad;
    int64_t correct = 0;
    test_loader.set_epoch(0);
    while (auto batch = test_loader.next()) {
      Tensor predicted = argmax(model(Variable(batch->x)).data(), 1);
      for (int64_t i = 0; i < batch->size(); ++i) {
        correct += predicted.data<int64_t>()[i] == batch->y.data<int64_t>()[i];
      }
    }
    std::printf("epoch %d: test accuracy %.2f%%\n", epoch + 1, 100.0 * correct / test->size());
  }
  return 0;
}
