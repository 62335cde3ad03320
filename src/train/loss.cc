#include "tessera/train/loss.h"

#include "tessera/autograd/functions.h"
#include "tessera/train/labels.h"

namespace tessera::train {

autograd::Variable training_loss(const TrainConfig& train, const autograd::Variable& logits,
                                 const Tensor& labels) {
  if (train.loss == "mse") {
    return autograd::mse_loss(logits, autograd::Variable(one_hot(labels, logits.shape().back())));
  }
  if (train.loss == "bce") {
    return autograd::binary_cross_entropy_with_logits(
        logits, autograd::Variable(one_hot(labels, logits.shape().back())));
  }
  return autograd::cross_entropy(logits, labels, train.label_smoothing);
}

}  // namespace tessera::train
