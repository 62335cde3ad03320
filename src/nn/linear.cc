#include "tessera/nn/linear.h"

#include <cmath>

#include "tessera/autograd/functions.h"
#include "tessera/nn/init.h"

namespace tessera::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen,
               const LinearOptions& options)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features < 1 || out_features < 1) {
    throw ValueError(detail::concat("Linear: features must be >= 1, got in=", in_features,
                                    " out=", out_features));
  }
  Tensor w = Tensor::empty({out_features, in_features}, options.dtype);
  init::kaiming_uniform_(w, std::sqrt(5.0), gen);
  weight_ = register_parameter("weight", w);
  if (options.bias) {
    Tensor b = Tensor::empty({out_features}, options.dtype);
    double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    init::uniform_(b, -bound, bound, gen);
    bias_ = register_parameter("bias", b);
  }
}

Variable Linear::forward(const Variable& input) {
  if (input.dim() < 2 || input.shape().back() != in_features_) {
    throw ShapeError(detail::concat(name(), ": expected input [N, ", in_features_, "] or [..., ",
                                    in_features_, "], got ", shape_str(input.shape())));
  }
  if (input.dim() == 2) return autograd::linear(input, weight_, bias_);
  // Every position of a sequence alike: one GEMM over all of them.
  Shape out_shape = input.shape();
  out_shape.back() = out_features_;
  const Variable rows = autograd::reshape(input, {-1, in_features_});
  return autograd::reshape(autograd::linear(rows, weight_, bias_), out_shape);
}

std::string Linear::name() const {
  return detail::concat("Linear(", in_features_, ", ", out_features_, ")");
}

TiedLinear::TiedLinear(Variable weight) : weight_(std::move(weight)) {
  if (weight_.dim() != 2) {
    throw ShapeError(
        detail::concat("TiedLinear: weight ", shape_str(weight_.shape()), ", expected [out, in]"));
  }
}

Variable TiedLinear::forward(const Variable& input) {
  const int64_t in = weight_.size(1);
  if (input.dim() < 2 || input.shape().back() != in) {
    throw ShapeError(
        detail::concat(name(), ": expected input [..., ", in, "], got ", shape_str(input.shape())));
  }
  Shape out_shape = input.shape();
  out_shape.back() = weight_.size(0);
  const Variable rows = autograd::reshape(input, {-1, in});
  return autograd::reshape(autograd::linear(rows, weight_, Variable()), out_shape);
}

std::string TiedLinear::name() const {
  return detail::concat("TiedLinear(", weight_.size(1), ", ", weight_.size(0), ")");
}

}  // namespace tessera::nn
