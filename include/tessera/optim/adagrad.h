#pragma once

#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {

struct AdagradOptions {
  double lr = 1e-2;
  // The step size decays as lr / (1 + (t - 1) * lr_decay).
  double lr_decay = 0.0;
  // L2 penalty added to the gradient: g + weight_decay * p.
  double weight_decay = 0.0;
  // Starting value of every element of the sum of squared gradients.
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

// Adagrad as torch.optim.Adagrad (PyTorch 1.13), per element, with t the parameter's step count:
//   g = g + weight_decay * p
//   sum += g * g
//   p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)
// One buffer (sum) per parameter.
class Adagrad : public Optimizer {
 public:
  // Throws ValueError naming the option and its value when any option is negative or not
  // finite.
  Adagrad(std::vector<autograd::Variable> params, const AdagradOptions& options);

  [[nodiscard]] const AdagradOptions& options() const { return options_; }
  [[nodiscard]] const char* kind() const override { return "adagrad"; }

 protected:
  void update(const Tensor& param, const Tensor& grad, ParamState& state) override;
  [[nodiscard]] size_t num_buffers() const override { return 1; }

 private:
  AdagradOptions options_;
};

}  // namespace tessera::optim
