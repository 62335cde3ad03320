#pragma once

#include "tessera/core/random.h"
#include "tessera/nn/module.h"
#include "tessera/tensor/conv.h"

namespace tessera::nn {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
  DType dtype = DType::kFloat32;
};

// 2-D convolution over [N, C, H, W] with a square kernel. Initialised as PyTorch does (uniform in
// +-1/sqrt(C * k * k)).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         Generator& gen = default_generator(), const Conv2dOptions& options = {});
  Variable forward(const Variable& input) override;
  std::string name() const override;
  const Variable& weight() const { return weight_; }
  const Variable& bias() const { return bias_; }

 private:
  int64_t in_channels_;
  int64_t out_channels_;
  int64_t kernel_size_;
  tessera::Conv2dOptions conv_;
  Variable weight_;
  Variable bias_;
};

// Max pooling over [N, C, H, W]; stride defaults to the kernel size.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  Variable forward(const Variable& input) override;
  std::string name() const override;

 private:
  Pool2dOptions options_;
};

}  // namespace tessera::nn
