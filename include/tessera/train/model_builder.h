#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "tessera/core/random.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/sequential.h"
#include "tessera/tensor/shape.h"
#include "tessera/train/config.h"

namespace tessera::train {

// Layers [first, last) of the config's list.
struct LayerRange {
  size_t first = 0;
  size_t last = SIZE_MAX;
};
using LayerVisitor = std::function<void(size_t index, nn::Module& layer, const Shape& input)>;

// Tensor parallelism as the model is built: each layer it splits (a token embedding, a
// transformer block, and the model's last layer when that is linear: the output head) goes, as
// soon as it is made, to `split`, and the model keeps what `split` returns (this process's part
// of it), so the whole layer lives only while it is split. The memory budget counts 1/ways of
// their parameters. `hold` gives this process's part of a split parameter that a kept layer uses
// but another stage owns (the token table a tied head on another pipeline stage holds a copy of).
struct LayerSplit {
  int64_t ways = 1;
  std::function<std::shared_ptr<nn::Module>(size_t index, std::shared_ptr<nn::Module> whole)> split;
  std::function<Tensor(const std::string& name, const Tensor& whole)> hold;
  // Every layer goes to `split` (ZeRO stage 3 shards them all), not only those above.
  bool every_layer = false;
};

// Builds the [model] layers for samples of `sample_shape` (without the batch dimension), inferring
// each layer's input size from the previous layer's output, so a config names only what it
// chooses: `{ type = "linear", out = 512 }`, `{ type = "conv2d", out = 32, kernel = 5,
// padding = 2 }`. Types: linear, conv2d, maxpool2d, flatten, relu, gelu, tanh, sigmoid, dropout,
// layernorm, batchnorm. A missing or unknown setting, a wrong type, or a layer that does not fit
// its input (linear on an image without flatten) throws ConfigError naming the layer, the key and
// its line. Weights are drawn from `init`; dropout layers draw from `dropout` (which must outlive
// the model), for the rows of the global batch that `shard` names (a data-parallel rank's).
// `output_shape`, when given, receives the model's output shape.
// Before each layer is made, the memory the model needs so far (parameters, their gradients and
// one batch of activations, the batch being data.batch_size / shard.count) is compared with
// `memory_limit` (0: train.memory_cap_mb, or without one this machine's physical memory): a model
// that needs more throws ConfigError naming the layer, the bytes and the limit.
//
// A pipeline stage keeps only the layers of `keep`, each under its index in the whole model, and
// counts only them against the memory; the others are made (so that each layer draws the weights
// it draws in the whole model) and dropped. A kept head tied to an embedding that is not kept
// holds a copy of the embedding's table under the table's name ("0.tokens"). `visit`, when given,
// sees every layer as it is made, with its index and its input shape per sample. `split` makes
// a tensor-parallel rank's part of the model (above).
[[nodiscard]] std::shared_ptr<nn::Sequential> build_model(
    const Config& config, const Shape& sample_shape, Generator& init, Generator& dropout,
    Shape* output_shape = nullptr, nn::BatchShard shard = {}, uint64_t memory_limit = 0,
    LayerRange keep = {}, const LayerVisitor& visit = {}, const LayerSplit& split = {});

}  // namespace tessera::train
