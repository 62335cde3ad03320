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
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator& gen = default_generator());
  Variable forward(const Variable& input) override;
  std::string name() const override;

 private:
  double p_;
  Generator& gen_;
};

}  // namespace tessera::nn
