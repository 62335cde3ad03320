// Micro-benchmarks of the numerical core: raw sgemm, tessera matmul, conv2d forward+backward and
// one MLP training step. bench/run_core.sh runs these beside PyTorch and prints ratios.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

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

benchmark::Counter gflops(double flops) {
  return benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                            benchmark::Counter::kIs1000);
}

// Raw OpenBLAS sgemm (what PyTorch's matmul runs on here), for reference.
void BM_RawOpenblasSgemm(benchmark::State& state) {
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
  state.counters["GFLOPS"] = gflops(2.0 * m * n * k);
}

// Raw oneDNN sgemm: what tessera's float32 matmul runs on, so its roofline.
void BM_RawSgemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Generator gen(1);
  Tensor a = Tensor::randn({m, k}, gen), b = Tensor::randn({k, n}, gen), c = Tensor::empty({m, n});
  for (auto _ : state) {
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data<float>(), k, b.data<float>(), n, 0.0f,
               c.data<float>(), n);
    benchmark::DoNotOptimize(c.data<float>());
  }
  state.counters["GFLOPS"] = gflops(2.0 * m * n * k);
}

// The eight GEMMs of one MLP step (784-512-256-10, batch 128: three forward, three weight
// gradients, two input gradients) as raw oneDNN sgemm calls: the step's roofline.
void BM_MlpStepGemms(benchmark::State& state) {
  struct Gemm {
    char ta, tb;
    int64_t m, n, k;
  };
  const std::vector<Gemm> gemms = {{'N', 'T', 128, 512, 784}, {'N', 'T', 128, 256, 512},
                                   {'N', 'T', 128, 10, 256},  {'T', 'N', 10, 256, 128},
                                   {'N', 'N', 128, 256, 10},  {'T', 'N', 256, 512, 128},
                                   {'N', 'N', 128, 512, 256}, {'T', 'N', 512, 784, 128}};
  Generator gen(1);
  std::vector<Tensor> a, b, c;
  double flops = 0;
  for (const auto& g : gemms) {
    a.push_back(Tensor::randn({g.m * g.k}, gen));
    b.push_back(Tensor::randn({g.k * g.n}, gen));
    c.push_back(Tensor::empty({g.m * g.n}));
    flops += 2.0 * g.m * g.n * g.k;
  }
  for (auto _ : state) {
    for (size_t i = 0; i < gemms.size(); ++i) {
      const Gemm& g = gemms[i];
      dnnl_sgemm(g.ta, g.tb, g.m, g.n, g.k, 1.0f, a[i].data<float>(), g.ta == 'N' ? g.k : g.m,
                 b[i].data<float>(), g.tb == 'N' ? g.n : g.k, 0.0f, c[i].data<float>(), g.n);
    }
    benchmark::DoNotOptimize(c[0].data<float>());
  }
  state.counters["GFLOPS"] = gflops(flops);
  state.counters["samples/s"] =
      benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Matmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Generator gen(1);
  Tensor a = Tensor::randn({m, k}, gen), b = Tensor::randn({k, n}, gen);
  for (auto _ : state) benchmark::DoNotOptimize(tessera::matmul(a, b));
  state.counters["GFLOPS"] = gflops(2.0 * m * n * k);
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
  state.counters["samples/s"] =
      benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
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
  state.counters["samples/s"] =
      benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_RawOpenblasSgemm)->Args({128, 784, 512})->Args({512, 512, 512})->UseRealTime();
BENCHMARK(BM_RawSgemm)->Args({128, 784, 512})->Args({512, 512, 512})->UseRealTime();
BENCHMARK(BM_MlpStepGemms)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Matmul)->Args({128, 784, 512})->Args({512, 512, 512})->UseRealTime();
BENCHMARK(BM_Conv2dStep)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MlpStep)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
