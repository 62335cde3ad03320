#include "tessera/nn/loss.h"

#include "tessera/autograd/functions.h"

namespace tessera::nn {

CrossEntropyLoss::CrossEntropyLoss(double label_smoothing) : label_smoothing_(label_smoothing) {
  if (label_smoothing < 0.0 || label_smoothing > 1.0) {
    throw ValueError(detail::concat("CrossEntropyLoss: label_smoothing ", label_smoothing,
                                    " must lie in [0, 1]"));
  }
}

Variable CrossEntropyLoss::operator()(const Variable& logits, const Tensor& labels) const {
  return autograd::cross_entropy(logits, labels, label_smoothing_);
}

Variable MSELoss::operator()(const Variable& input, const Variable& target) const {
  return autograd::mse_loss(input, target);
}

Variable BCEWithLogitsLoss::operator()(const Variable& logits, const Variable& target) const {
  return autograd::binary_cross_entropy_with_logits(logits, target);
}

}  // namespace tessera::nn
