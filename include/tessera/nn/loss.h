#pragma once

#include "tessera/autograd/variable.h"

namespace tessera::nn {

using autograd::Variable;

// Mean softmax cross-entropy of logits [N, C] against int labels [N], fused (one pass computes the
// loss and the softmax backward reuses). label_smoothing as in torch.nn.CrossEntropyLoss.
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(double label_smoothing = 0.0);
  Variable operator()(const Variable& logits, const Tensor& labels) const;

 private:
  double label_smoothing_;
};

// Mean squared error.
class MSELoss {
 public:
  Variable operator()(const Variable& input, const Variable& target) const;
};

// Mean binary cross-entropy on logits (sigmoid folded in, stable for large logits).
class BCEWithLogitsLoss {
 public:
  Variable operator()(const Variable& logits, const Variable& target) const;
};

}  // namespace tessera::nn
