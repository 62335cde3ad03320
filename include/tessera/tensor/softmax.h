#pragma once

#include "tessera/tensor/tensor.h"

namespace tessera {

// Softmax and log-softmax along an axis, computed stably (max subtracted).
Tensor softmax(const Tensor& a, int64_t axis);
Tensor log_softmax(const Tensor& a, int64_t axis);
// Gradients from the forward output y: softmax: y * (g - sum(g * y)); log-softmax:
// g - exp(y) * sum(g).
Tensor softmax_backward(const Tensor& grad, const Tensor& output, int64_t axis);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& output, int64_t axis);

struct CrossEntropyResult {
  Tensor loss;   // scalar: mean over the batch
  Tensor probs;  // [N, C] softmax, saved for backward
};
// Fused softmax cross-entropy: logits [N, C], labels int32/int64 [N] in [0, C). With label
// smoothing e the target is (1 - e) * one_hot + e / C, as in PyTorch. A label out of range throws
// IndexError naming the row, the label and C.
CrossEntropyResult softmax_cross_entropy(const Tensor& logits, const Tensor& labels,
                                         double label_smoothing = 0.0);
// d loss / d logits = (probs - target) * grad / N.
Tensor softmax_cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& labels,
                                      double label_smoothing = 0.0);

}  // namespace tessera
