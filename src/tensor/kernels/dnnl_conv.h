#pragma once

#include <cstdint>

namespace tessera::kernels {

// Geometry of a 2-D convolution with square stride and symmetric padding.
struct ConvShape {
  int64_t n, c, h, w, o, kh, kw, oh, ow, stride, pad;
};

// float32 convolution on oneDNN's primitives (JIT kernels for the CPU's widest vector unit, in its
// blocked layouts; tensors are reordered from and to NCHW / OIHW around each call). oneDNN keeps
// its own cache of compiled primitives, so repeated shapes compile once. All pointers are
// contiguous NCHW / OIHW; bias and grad_bias may be null.
void dnnl_conv2d_forward(const ConvShape& g, const float* input, const float* weight,
                         const float* bias, float* output);
void dnnl_conv2d_backward_data(const ConvShape& g, const float* grad_output, const float* weight,
                               float* grad_input);
void dnnl_conv2d_backward_weights(const ConvShape& g, const float* input, const float* grad_output,
                                  float* grad_weight, float* grad_bias);

}  // namespace tessera::kernels
