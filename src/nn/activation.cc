#include "tessera/nn/activation.h"

#include "tessera/autograd/functions.h"

namespace tessera::nn {

Variable ReLU::forward(const Variable& input) { return autograd::relu(input); }
Variable GELU::forward(const Variable& input) { return autograd::gelu(input); }
Variable Tanh::forward(const Variable& input) { return autograd::tanh(input); }
Variable Sigmoid::forward(const Variable& input) { return autograd::sigmoid(input); }

Variable Flatten::forward(const Variable& input) {
  if (input.dim() < 1) throw ShapeError("Flatten: expected at least 1-D input, got []");
  return autograd::reshape(input, {input.size(0), -1});
}

Dropout::Dropout(double p, Generator& gen, BatchShard shard) : p_(p), gen_(gen), shard_(shard) {
  if (p < 0.0 || p >= 1.0) {
    throw ValueError(detail::concat("Dropout: probability ", p, " must lie in [0, 1)"));
  }
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count) {
    throw ValueError(detail::concat("Dropout: shard ", shard.index, " of ", shard.count,
                                    " is not one of 0 .. count - 1"));
  }
}

Variable Dropout::forward(const Variable& input) {
  if (!is_training()) return input;
  return autograd::dropout(input, p_, gen_, shard_.index, shard_.count);
}

std::string Dropout::name() const { return detail::concat("Dropout(", p_, ")"); }

}  // namespace tessera::nn
