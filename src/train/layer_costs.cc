#include "layer_costs.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "tessera/autograd/functions.h"
#include "tessera/nn/embedding.h"
#include "tessera/train/model_builder.h"

namespace tessera::train {

std::vector<double> measure_layer_costs(const Config& config, const Shape& sample_shape,
                                        int64_t rows) {
  constexpr int kTries = 3;
  Generator init(config.train.seed), dropout(config.train.seed), data(config.train.seed);
  std::vector<double> costs(config.model.layers.size(), 0.0);
  auto time_layer = [&](size_t index, nn::Module& layer, const Shape& input) {
    Shape shape{rows};
    shape.insert(shape.end(), input.begin(), input.end());
    const bool tokens = dynamic_cast<nn::TokenEmbedding*>(&layer) != nullptr;
    const Tensor x = tokens ? Tensor::zeros(shape, DType::kInt64) : Tensor::randn(shape, data);
    layer.eval();  // no running statistics to move, no dropout masks to draw
    double best = std::numeric_limits<double>::infinity();
    for (int t = 0; t < kTries; ++t) {
      const auto start = std::chrono::steady_clock::now();
      autograd::Variable in(x, /*requires_grad=*/!tokens);
      autograd::sum(layer(in)).backward();
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    costs[index] = best;
  };
  (void)build_model(config, sample_shape, init, dropout, nullptr, {}, 0, LayerRange{0, 0},
                    time_layer);
  return costs;
}

}  // namespace tessera::train
