#include "tessera/nn/normalization.h"

#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/tensor/elementwise.h"

namespace tessera::nn {

using autograd::add_scalar;
using autograd::mean;
using autograd::mul;
using autograd::reshape;
using autograd::sqrt;
using autograd::sub;

LayerNorm::LayerNorm(int64_t features, double eps, DType dtype) : features_(features), eps_(eps) {
  weight_ = register_parameter("weight", Tensor::ones({features}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({features}, dtype));
}

Variable LayerNorm::forward(const Variable& x) {
  if (x.dim() < 1 || x.size(-1) != features_) {
    throw ShapeError(detail::concat(name(), ": expected last dimension ", features_, ", got ",
                                    shape_str(x.shape())));
  }
  Variable centered = sub(x, mean(x, {-1}, true));
  Variable var = mean(mul(centered, centered), {-1}, true);
  Variable normed = autograd::div(centered, sqrt(add_scalar(var, eps_)));
  return autograd::add(mul(normed, weight_), bias_);
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
  Shape channel_shape(x.dim(), 1);
  channel_shape[1] = channels_;
  std::vector<int64_t> axes = x.dim() == 2 ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 2, 3};
  Variable w = reshape(weight_, channel_shape);
  Variable b = reshape(bias_, channel_shape);
  if (!is_training()) {
    Variable mu(running_mean_.reshape(channel_shape));
    Variable inv_std(tessera::div(Tensor::ones(channel_shape, x.dtype()),
                                  tessera::sqrt(tessera::add_scalar(running_var_, eps_)))
                         .reshape(channel_shape));
    return autograd::add(mul(mul(sub(x, mu), inv_std), w), b);
  }
  int64_t count = x.numel() / channels_;
  if (count < 2) {
    throw ShapeError(detail::concat(name(), ": training needs more than one value per channel, got ",
                                    shape_str(x.shape())));
  }
  Variable mu = mean(x, axes, true);
  Variable centered = sub(x, mu);
  Variable var = mean(mul(centered, centered), axes, true);
  {
    autograd::NoGradGuard no_grad;
    Tensor batch_mean = mu.data().reshape({channels_});
    Tensor unbiased = tessera::mul_scalar(var.data().reshape({channels_}),
                                          static_cast<double>(count) / (count - 1));
    running_mean_.copy_from(tessera::add(tessera::mul_scalar(running_mean_, 1.0 - momentum_),
                                         tessera::mul_scalar(batch_mean, momentum_)));
    running_var_.copy_from(tessera::add(tessera::mul_scalar(running_var_, 1.0 - momentum_),
                                        tessera::mul_scalar(unbiased, momentum_)));
  }
  Variable normed = autograd::div(centered, sqrt(add_scalar(var, eps_)));
  return autograd::add(mul(normed, w), b);
}

std::string BatchNorm::name() const { return detail::concat("BatchNorm(", channels_, ")"); }

}  // namespace tessera::nn
