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

ModelIO model_io(const data::Batch& batch, bool next_token) {
  if (!next_token) return {batch.x, batch.y};
  const int64_t window = batch.x.size(1);
  return {batch.x.slice(1, 0, window - 1).contiguous(),
          batch.x.slice(1, 1, window).to(DType::kInt64).reshape({-1})};
}

autograd::Variable score_rows(const autograd::Variable& logits) {
  if (logits.dim() <= 2) return logits;
  return autograd::reshape(logits, {-1, logits.shape().back()});
}

}  // namespace tessera::train
