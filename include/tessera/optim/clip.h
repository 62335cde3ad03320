#pragma once

#include <vector>

#include "tessera/autograd/variable.h"

namespace tessera::optim {

// Returns the L2 norm of all the parameters' gradients taken together (accumulated in double;
// parameters without a gradient count as zero) and, as torch.nn.utils.clip_grad_norm_ (PyTorch
// 1.13) does, multiplies every gradient in place by max_norm / (norm + 1e-6) when that factor is
// below 1, so that the clipped norm is at most max_norm. A non-finite norm is returned with the
// gradients left untouched (PyTorch would scale them by NaN), so the caller can skip the step.
// Throws ValueError on a negative or NaN max_norm.
double clip_grad_norm(const std::vector<autograd::Variable>& params, double max_norm);

// clip_grad_norm in two halves, for a model whose parameters are spread over processes: each
// sums its gradients' squares, the sums are added up, and each clips by the whole norm.
[[nodiscard]] double gradient_sum_of_squares(const std::vector<autograd::Variable>& params);
void clip_to_norm(const std::vector<autograd::Variable>& params, double norm, double max_norm);

}  // namespace tessera::optim
