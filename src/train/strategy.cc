#include "strategy.h"

#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/core/error.h"

namespace tessera::train {

Strategy::Strategy(comm::ProcessGroup* group, bool group_of_one) : group_(group) {
  if (group_ == nullptr && group_of_one) {
    own_group_ = comm::make_gloo_group(std::make_shared<comm::HashStore>(), 0, 1);
    group_ = own_group_.get();
  }
}

Strategy::~Strategy() = default;

int Strategy::data_rank() const { return group_ ? group_->rank() : 0; }

int Strategy::data_ranks() const { return group_ ? group_->size() : 1; }

int64_t Strategy::optimizer_state_bytes() {
  const optim::Optimizer& opt = optimizer();
  int64_t bytes = 0;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    for (const auto& b : opt.state(i).buffers) bytes += static_cast<int64_t>(b.nbytes());
  }
  return bytes;
}

std::string resolve_strategy(const std::string& strategy, const comm::ProcessGroup* group) {
  if (strategy != "auto") return strategy;
  return group != nullptr && group->size() > 1 ? "ddp" : "none";
}

std::unique_ptr<Strategy> make_strategy(const Config& config, const TrainerOptions& options) {
  comm::ProcessGroup* group = options.group;
  const std::string& name = config.parallel.strategy;
  if (name == "none") return make_plain_strategy(config, group);
  if (name == "ddp") return make_ddp_strategy(config, group);
  if (name == "zero") return make_zero_strategy(config, group);
  if (name == "ps") return make_ps_strategy(config, options);
  // load_config admits only the names above.
  throw InternalError("make_strategy: unknown strategy \"" + name + "\"");
}

}  // namespace tessera::train
