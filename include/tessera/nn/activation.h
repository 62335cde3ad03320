#pragma once

#include "tessera/nn/module.h"

namespace tessera::nn {

// Elementwise activations; no parameters.
class ReLU : public Module {
 public:
  Variable forward(const Variable& input) override;
  std::string name() const override { return "ReLU"; }
};

// Exact GELU, x * Phi(x), as PyTorch's default.
class GELU : public Module {
 public:
  Variable forward(const Variable& input) override;
  std::string name() const override { return "GELU"; }
};

class Tanh : public Module {
 public:
  Variable forward(const Variable& input) override;
  std::string name() const override { return "Tanh"; }
};

class Sigmoid : public Module {
 public:
  Variable forward(const Variable& input) override;
  std::string name() const override { return "Sigmoid"; }
};

// Flattens every dimension after the first: [N, ...] -> [N, prod(...)].
class Flatten : public Module {
 public:
  Variable forward(const Variable& input) override;
  std::string name() const override { return "Flatten"; }
};

// Zeroes elements with probability p in training mode (scaling the rest by 1/(1-p)); identity in
// evaluation mode. Draws from the generator given at construction.
// Which rows of a larger batch a module's input holds: rows index, index + count, index + 2 *
// count, ... (a data-parallel rank's share of the global batch, as DistributedSampler deals
// it). {0, 1}: the whole batch.
struct BatchShard {
  int index = 0;
  int count = 1;
};

class Dropout : public Module {
 public:
  // With a shard, the mask is drawn for the whole (count times longer) batch and the shard's rows
  // kept: ranks that seed `gen` alike drop together exactly what one process would drop on the
  // global batch.
  explicit Dropout(double p, Generator& gen = default_generator(), BatchShard shard = {});
  Variable forward(const Variable& input) override;
  std::string name() const override;
  // What it draws its masks from (a pipeline puts it back to recompute a forward).
  Generator& generator() const { return gen_; }

 private:
  double p_;
  Generator& gen_;
  BatchShard shard_;
};

}  // namespace tessera::nn
