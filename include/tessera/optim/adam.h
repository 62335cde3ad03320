#pragma once

#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // L2 penalty added to the gradient (coupled): g + weight_decay * p. See AdamW for decoupled.
  double weight_decay = 0.0;
  // Divide by the running maximum of the second moment (Reddi et al., 2018).
  bool amsgrad = false;
};

// Adam as torch.optim.Adam (PyTorch 1.13), per element, with t the parameter's step count:
//   g = g + weight_decay * p
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v)                                  (amsgrad only; v below becomes vmax)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Buffers per parameter: m, v, and vmax with amsgrad; m and v start at zero.
class Adam : public Optimizer {
 public:
  // Throws ValueError naming the option and its value when lr, eps or weight_decay is negative
  // or not finite, or a beta lies outside [0, 1).
  Adam(std::vector<autograd::Variable> params, const AdamOptions& options);

  [[nodiscard]] const AdamOptions& options() const { return options_; }
  [[nodiscard]] const char* kind() const override { return decoupled_ ? "adamw" : "adam"; }

 protected:
  // decoupled: weight decay multiplies the parameter by (1 - lr * weight_decay) before the
  // update instead of adding to the gradient (AdamW).
  Adam(std::vector<autograd::Variable> params, const AdamOptions& options, bool decoupled);

  void update(const Tensor& param, const Tensor& grad, ParamState& state) override;
  [[nodiscard]] size_t num_buffers() const override { return options_.amsgrad ? 3 : 2; }

 private:
  AdamOptions options_;
  bool decoupled_;
};

}  // namespace tessera::optim
