#include "optimizer_factory.h"

#include <algorithm>

#include "tessera/optim/adagrad.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/adamw.h"
#include "tessera/optim/cosine_lr.h"
#include "tessera/optim/linear_warmup.h"
#include "tessera/optim/sgd.h"
#include "tessera/optim/step_lr.h"

namespace tessera::train {

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& o,
                                                 std::vector<autograd::Variable> params) {
  if (o.name == "sgd") {
    return std::make_unique<optim::Sgd>(std::move(params),
                                        optim::SgdOptions{.lr = o.lr,
                                                          .momentum = o.momentum,
                                                          .weight_decay = o.weight_decay,
                                                          .nesterov = o.nesterov});
  }
  if (o.name == "adam") {
    return std::make_unique<optim::Adam>(std::move(params),
                                         optim::AdamOptions{.lr = o.lr,
                                                            .beta1 = o.beta1,
                                                            .beta2 = o.beta2,
                                                            .eps = o.eps,
                                                            .weight_decay = o.weight_decay});
  }
  if (o.name == "adamw") {
    return std::make_unique<optim::AdamW>(std::move(params),
                                          optim::AdamWOptions{.lr = o.lr,
                                                              .beta1 = o.beta1,
                                                              .beta2 = o.beta2,
                                                              .eps = o.eps,
                                                              .weight_decay = o.weight_decay});
  }
  return std::make_unique<optim::Adagrad>(
      std::move(params), optim::AdagradOptions{.lr = o.lr,
                                               .weight_decay = o.weight_decay,
                                               .initial_accumulator_value = o.initial_accumulator});
}

std::unique_ptr<optim::LrScheduler> make_schedule(const OptimizerConfig& o, optim::Optimizer& opt,
                                                  int64_t steps_per_epoch, int64_t total_steps) {
  std::unique_ptr<optim::LrScheduler> after;
  if (o.schedule == "step") {
    after = std::make_unique<optim::StepLr>(opt, o.step_size * steps_per_epoch, o.gamma);
  } else if (o.schedule == "cosine") {
    after = std::make_unique<optim::CosineLr>(
        opt, std::max<int64_t>(1, total_steps - o.warmup_steps), o.min_lr);
  }
  if (o.warmup_steps > 0) {
    return std::make_unique<optim::LinearWarmup>(opt, o.warmup_steps, std::move(after));
  }
  return after;
}

}  // namespace tessera::train
