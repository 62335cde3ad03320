#pragma once

#include <cstdint>
#include <vector>

#include "tessera/tensor/shape.h"
#include "tessera/train/config.h"

namespace tessera::train {

// The seconds each of the config's layers takes for a forward and a backward on `rows` samples
// of `sample_shape` (the fastest of a few tries), for cutting a pipeline into even stages. The
// layers are made one at a time and dropped, with generators of their own: building a model
// afterwards draws the same weights as without this.
[[nodiscard]] std::vector<double> measure_layer_costs(const Config& config,
                                                      const Shape& sample_shape, int64_t rows);

}  // namespace tessera::train
