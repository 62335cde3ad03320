#include "tessera/optim/adamw.h"

#include <utility>

namespace tessera::optim {

AdamW::AdamW(std::vector<autograd::Variable> params, const AdamWOptions& options)
    : Adam(std::move(params),
           AdamOptions{.lr = options.lr,
                       .beta1 = options.beta1,
                       .beta2 = options.beta2,
                       .eps = options.eps,
                       .weight_decay = options.weight_decay,
                       .amsgrad = options.amsgrad},
           /*decoupled=*/true) {}

}  // namespace tessera::optim
