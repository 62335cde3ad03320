#pragma once

// Shared by the data-parallel equivalence tests: a small model, deterministic global batches,
// and the one-process reference every strategy must reproduce.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "tessera/autograd/functions.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/sgd.h"

namespace tessera::parallel {

using autograd::Variable;

constexpr int64_t kGlobalBatch = 12;
constexpr int kSteps = 20;

inline std::shared_ptr<nn::Sequential> make_model(uint64_t seed, int64_t hidden = 8) {
  Generator gen(seed);
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(6, hidden, gen), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(hidden, 3, gen)});
}

// The data of step s: a global batch of inputs and labels, the same on every rank.
struct StepData {
  Tensor x, y;
};
inline StepData step_data(int step) {
  Generator gen(1000 + static_cast<uint64_t>(step));
  Tensor x = Tensor::randn({kGlobalBatch, 6}, gen);
  std::vector<int64_t> labels(kGlobalBatch);
  for (auto& l : labels) l = static_cast<int64_t>(gen.below(3));
  return {x, Tensor::from_vector(labels, {kGlobalBatch})};
}

inline std::vector<std::vector<float>> values(nn::Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& p : m.parameters()) out.push_back(p.data().to_vector<float>());
  return out;
}

// One process, global batches.
using OptimizerFactory =
    std::function<std::unique_ptr<optim::Optimizer>(std::vector<autograd::Variable>)>;

inline std::unique_ptr<optim::Optimizer> sgd_momentum(std::vector<autograd::Variable> params) {
  return std::make_unique<optim::Sgd>(std::move(params),
                                      optim::SgdOptions{.lr = 0.1, .momentum = 0.9});
}

inline std::vector<std::vector<float>> reference(const OptimizerFactory& make = sgd_momentum) {
  auto model = make_model(1);
  auto opt = make(model->parameters());
  for (int s = 0; s < kSteps; ++s) {
    StepData d = step_data(s);
    opt->zero_grad();
    autograd::cross_entropy((*model)(Variable(d.x)), d.y).backward();
    opt->step();
  }
  return values(*model);
}

inline double max_relative_error(const std::vector<std::vector<float>>& a,
                                 const std::vector<std::vector<float>>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t k = 0; k < a[i].size(); ++k) {
      num = std::max(num, std::abs(double(a[i][k]) - b[i][k]));
      den = std::max(den, std::abs(double(b[i][k])));
    }
  }
  return num / den;
}

}  // namespace tessera::parallel
