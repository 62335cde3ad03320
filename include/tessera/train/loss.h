#pragma once

#include "tessera/autograd/variable.h"
#include "tessera/train/config.h"

namespace tessera::train {

// The loss train.loss names, of logits [N, C] against class labels [N]:
//   cross_entropy  softmax cross-entropy, with train.label_smoothing
//   mse            mean squared error against one-hot rows
//   bce            binary cross-entropy of each output against one-hot rows (one-vs-rest)
// Throws IndexError naming the row when a label is outside 0 .. C-1.
[[nodiscard]] autograd::Variable training_loss(const TrainConfig& train,
                                               const autograd::Variable& logits,
                                               const Tensor& labels);

}  // namespace tessera::train
