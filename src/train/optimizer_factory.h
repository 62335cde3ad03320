#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/optim/lr_scheduler.h"
#include "tessera/optim/optimizer.h"
#include "tessera/train/config.h"

namespace tessera::train {

// The [optimizer] over `params` (the config has been checked: its name is one of the four).
[[nodiscard]] std::unique_ptr<optim::Optimizer> make_optimizer(
    const OptimizerConfig& config, std::vector<autograd::Variable> params);

// The [optimizer] schedule driving `optimizer`, or nullptr for a constant learning rate. Borrows
// the optimizer.
[[nodiscard]] std::unique_ptr<optim::LrScheduler> make_schedule(const OptimizerConfig& config,
                                                                optim::Optimizer& optimizer,
                                                                int64_t steps_per_epoch,
                                                                int64_t total_steps);

}  // namespace tessera::train
