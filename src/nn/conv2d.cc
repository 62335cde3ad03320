#include "tessera/nn/conv2d.h"

#include <cmath>

#include "tessera/autograd/functions.h"
#include "tessera/nn/init.h"

namespace tessera::nn {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen,
               const Conv2dOptions& options)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      conv_{options.stride, options.padding} {
  if (in_channels < 1 || out_channels < 1 || kernel_size < 1) {
    throw ValueError(detail::concat("Conv2d: channels and kernel must be >= 1, got in=",
                                    in_channels, " out=", out_channels, " kernel=", kernel_size));
  }
  Tensor w = Tensor::empty({out_channels, in_channels, kernel_size, kernel_size}, options.dtype);
  init::kaiming_uniform_(w, std::sqrt(5.0), gen);
  weight_ = register_parameter("weight", w);
  if (options.bias) {
    Tensor b = Tensor::empty({out_channels}, options.dtype);
    double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(w)));
    init::uniform_(b, -bound, bound, gen);
    bias_ = register_parameter("bias", b);
  }
}

Variable Conv2d::forward(const Variable& input) {
  if (input.dim() != 4 || input.size(1) != in_channels_) {
    throw ShapeError(detail::concat(name(), ": expected input [N, ", in_channels_, ", H, W], got ",
                                    shape_str(input.shape())));
  }
  return autograd::conv2d(input, weight_, bias_, conv_);
}

std::string Conv2d::name() const {
  return detail::concat("Conv2d(", in_channels_, ", ", out_channels_, ", kernel=", kernel_size_,
                        ", stride=", conv_.stride, ", padding=", conv_.padding, ")");
}

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : options_{kernel_size, stride, padding} {}

Variable MaxPool2d::forward(const Variable& input) { return autograd::max_pool2d(input, options_); }

std::string MaxPool2d::name() const {
  return detail::concat("MaxPool2d(", options_.kernel,
                        ", stride=", options_.stride == 0 ? options_.kernel : options_.stride, ")");
}

}  // namespace tessera::nn
