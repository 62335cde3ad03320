#pragma once

#include <memory>

#include "tessera/core/random.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/sequential.h"
#include "tessera/tensor/shape.h"
#include "tessera/train/config.h"

namespace tessera::train {

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
// `memory_limit` (0: this machine's physical memory): a model that needs more throws ConfigError
// naming the layer and the bytes.
[[nodiscard]] std::shared_ptr<nn::Sequential> build_model(
    const Config& config, const Shape& sample_shape, Generator& init, Generator& dropout,
    Shape* output_shape = nullptr, nn::BatchShard shard = {}, uint64_t memory_limit = 0);

}  // namespace tessera::train
