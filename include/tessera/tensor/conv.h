#pragma once

#include "tessera/tensor/tensor.h"

namespace tessera {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
};

// 2-D convolution (cross-correlation, as PyTorch): input [N, C, H, W], weight [O, C, kh, kw],
// bias [O] or undefined. Output [N, O, OH, OW]. float32 runs on oneDNN's convolution primitives
// (faster than im2col + GEMM, see docs/design-notes.md); float64, for gradient checks,
// runs on im2col + GEMM over groups of samples.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dOptions& options = {});

struct Conv2dGrads {
  Tensor input;  // undefined unless requested
  Tensor weight;
  Tensor bias;  // undefined unless requested
};
Conv2dGrads conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                            const Conv2dOptions& options, bool need_input, bool need_bias);

struct Pool2dOptions {
  int64_t kernel = 2;
  int64_t stride = 0;  // 0: same as kernel
  int64_t padding = 0;
};

struct MaxPoolResult {
  Tensor output;   // [N, C, OH, OW]
  Tensor indices;  // int64: flat index in the input plane (h * W + w) of each maximum
};
MaxPoolResult max_pool2d(const Tensor& input, const Pool2dOptions& options = {});
Tensor max_pool2d_backward(const Tensor& grad_output, const Tensor& indices,
                           const Shape& input_shape);

}  // namespace tessera
