#include "tessera/nn/normalization.h"

#include "tessera/autograd/functions.h"

namespace tessera::nn {

LayerNorm::LayerNorm(int64_t features, double eps, DType dtype) : features_(features), eps_(eps) {
  weight_ = register_parameter("weight", Tensor::ones({features}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({features}, dtype));
}

Variable LayerNorm::forward(const Variable& x) {
  if (x.dim() < 1 || x.size(-1) != features_) {
    throw ShapeError(detail::concat(name(), ": expected last dimension ", features_, ", got ",
                                    shape_str(x.shape())));
  }
  return autograd::layer_norm(x, weight_, bias_, eps_);
}

std::string LayerNorm::name() const { return detail::concat("LayerNorm(", features_, ")"); }

BatchNorm::BatchNorm(int64_t channels, double eps, double momentum, DType dtype)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  weight_ = register_parameter("weight", Tensor::ones({channels}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({channels}, dtype));
  running_mean_ = Tensor::zeros({channels}, dtype);
  running_var_ = Tensor::ones({channels}, dtype);
  register_buffer("running_mean", running_mean_);
  register_buffer("running_var", running_var_);
}

Variable BatchNorm::forward(const Variable& x) {
  if ((x.dim() != 2 && x.dim() != 4) || x.size(1) != channels_) {
    throw ShapeError(detail::concat(name(), ": expected [N, ", channels_, "] or [N, ", channels_,
                                    ", H, W], got ", shape_str(x.shape())));
  }
  return autograd::batch_norm(x, weight_, bias_, running_mean_, running_var_, is_training(),
                              momentum_, eps_, across_ ? &*across_ : nullptr);
}

std::string BatchNorm::name() const { return detail::concat("BatchNorm(", channels_, ")"); }

}  // namespace tessera::nn
