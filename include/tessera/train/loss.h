#pragma once

#include "tessera/autograd/variable.h"
#include "tessera/data/dataset.h"
#include "tessera/train/config.h"

namespace tessera::train {

// The loss train.loss names, of logits [N, C] against class labels [N]:
//   cross_entropy  softmax cross-entropy, with train.label_smoothing
//   mse            mean squared error against one-hot rows
//   bce            binary cross-entropy of each output against one-hot rows (one-vs-rest)
//   next_token     cross_entropy of every position's scores against the next token (model_io)
// Throws IndexError naming the row when a label is outside 0 .. C-1.
[[nodiscard]] autograd::Variable training_loss(const TrainConfig& train,
                                               const autograd::Variable& logits,
                                               const Tensor& labels);

// What the model reads from a batch and what its scores are compared with. Classification: the
// batch's x and y. next_token (text windows of seq_len + 1 tokens): the first seq_len tokens of
// each window, and each position's next token, [B * seq_len].
struct ModelIO {
  Tensor input;
  Tensor targets;
};
[[nodiscard]] ModelIO model_io(const data::Batch& batch, bool next_token);

// The model's output as rows of class scores: [B, T, C] (a score row per position) becomes
// [B * T, C]; [B, C] stays.
[[nodiscard]] autograd::Variable score_rows(const autograd::Variable& logits);

}  // namespace tessera::train
