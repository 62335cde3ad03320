#pragma once

#include "tessera/autograd/variable.h"

namespace tessera::autograd {

// Reverse-mode pass from root with d(root) = grad_output. Nodes run latest-created first; each
// leaf's gradient accumulates into its grad(), and its gradient-ready hooks fire as soon as every
// use of it in this graph has contributed (so in reverse order of use). The graph is kept, so a
// second backward over it works.
void run_backward(const Variable& root, const Tensor& grad_output);

}  // namespace tessera::autograd
