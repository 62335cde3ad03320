#pragma once

#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/adam.h"

namespace tessera::optim {

// AdamOptions with torch.optim.AdamW's default decay.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Decoupled: p *= 1 - lr * weight_decay before the Adam update; the gradient is left alone.
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

// AdamW as torch.optim.AdamW (PyTorch 1.13; Loshchilov & Hutter): Adam with the weight decay
// applied to the parameter, not to the gradient, so it is not rescaled by the adaptive step.
// Its state is tagged "adamw" and does not load into an Adam (nor the reverse).
class AdamW : public Adam {
 public:
  // Throws ValueError as Adam does.
  AdamW(std::vector<autograd::Variable> params, const AdamWOptions& options);
};

}  // namespace tessera::optim
