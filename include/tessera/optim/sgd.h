#pragma once

#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  // L2 penalty added to the gradient: g + weight_decay * p.
  double weight_decay = 0.0;
  // Needs momentum > 0 and dampening == 0.
  bool nesterov = false;
};

// Stochastic gradient descent as torch.optim.SGD (PyTorch 1.13), per element:
//   d = g + weight_decay * p
//   if momentum != 0:
//     buf = first update ? d : momentum * buf + (1 - dampening) * d
//     d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
// One pass over the parameter, gradient and buffer per step. Keeps one buffer (the momentum)
// per parameter when momentum != 0, none otherwise.
class Sgd : public Optimizer {
 public:
  // Throws ValueError naming the option and its value when lr, momentum, dampening or
  // weight_decay is negative or not finite, or nesterov is set without momentum or with
  // dampening.
  Sgd(std::vector<autograd::Variable> params, const SgdOptions& options);

  [[nodiscard]] const SgdOptions& options() const { return options_; }
  [[nodiscard]] const char* kind() const override { return "sgd"; }

 protected:
  void update(const Tensor& param, const Tensor& grad, ParamState& state) override;
  [[nodiscard]] size_t num_buffers() const override { return options_.momentum != 0.0 ? 1 : 0; }

 private:
  SgdOptions options_;
};

}  // namespace tessera::optim
