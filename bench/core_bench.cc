// Micro-benchmarks of the numerical core: raw sgemm, tessera matmul, conv2d forward+backward and
// one MLP training step. bench/run_core.sh runs these beside PyTorch and prints ratios.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <memory>

#include "tessera/autograd/functions.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/conv2d.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/loss.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/sgd.h"
#include "tessera/tensor/matmul.h"
#include "tessera/tensor/threads.h"

namespace {

using tessera::Generator;
using tessera::Tensor;
using tessera::autograd::Variable;

// Raw OpenBLAS sgemm: the roofline tessera's matmul is held to.
void BM_RawSgemm(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1)),
            n = static_cast<int>(state.range(2));
  Generator gen(1);
  Tensor a = Tensor::randn({m, k}, gen), b = Tensor::randn({k, n}, gen), c = Tensor::empty({m, n});
  tessera::apply_blas_threads();
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data<float>(), k,
                b.data<float>(), n, 0.0f, c.data<float>(), n);
    benchmark::DoNotOptimize(c.data<float>());
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_Matmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Generator gen(1);
  Tensor a = Tensor::randn({m, k}, gen), b = Tensor::randn({k, n}, gen);
  for (auto _ : state) benchmark::DoNotOptimize(tessera::matmul(a, b));
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// Conv2d forward + backward: batch 128 of 32x14x14, 64 filters 5x5, padding 2 (the second
// convolution of the Fashion-MNIST CNN).
void BM_Conv2dStep(benchmark::State& state) {
  Generator gen(1);
  tessera::nn::Conv2d conv(32, 64, 5, gen, {.padding = 2});
  Variable x(Tensor::randn({128, 32, 14, 14}, gen), true);
  for (auto _ : state) {
    conv.zero_grad();
    x.zero_grad();
    Variable y = conv(x);
    tessera::autograd::sum(y).backward();
  }
  state.counters["samples/s"] = benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
}

// One training step of the 784-512-256-10 MLP, batch 128, SGD with momentum.
void BM_MlpStep(benchmark::State& state) {
  Generator gen(1);
  auto model = std::make_shared<tessera::nn::Sequential>();
  model->push_back(std::make_shared<tessera::nn::Linear>(784, 512, gen));
  model->push_back(std::make_shared<tessera::nn::ReLU>());
  model->push_back(std::make_shared<tessera::nn::Linear>(512, 256, gen));
  model->push_back(std::make_shared<tessera::nn::ReLU>());
  model->push_back(std::make_shared<tessera::nn::Linear>(256, 10, gen));
  tessera::optim::Sgd opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
  tessera::nn::CrossEntropyLoss loss_fn;
  Variable x(Tensor::rand({128, 784}, gen));
  std::vector<int64_t> label_values(128);
  for (int i = 0; i < 128; ++i) label_values[i] = i % 10;
  Tensor labels = Tensor::from_vector(label_values, {128});
  for (auto _ : state) {
    opt.zero_grad();
    Variable loss = loss_fn((*model)(x), labels);
    loss.backward();
    opt.step();
  }
  state.counters["samples/s"] = benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_RawSgemm)->Args({128, 784, 512})->Args({512, 512, 512})->UseRealTime();
BENCHMARK(BM_Matmul)->Args({128, 784, 512})->Args({512, 512, 512})->UseRealTime();
BENCHMARK(BM_Conv2dStep)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MlpStep)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
