#include "plain_strategy.h"

#include "optimizer_factory.h"
#include "section_bytes.h"
#include "tessera/core/error.h"
#include "tessera/optim/clip.h"

namespace tessera::train {

void PlainStrategy::attach(nn::Sequential& model) {
  model_ = &model;
  optimizer_ = make_optimizer(config_, model.parameters());
}

void PlainStrategy::zero_grad() { optimizer_->zero_grad(); }

void PlainStrategy::step() {
  if (config_.clip_grad_norm > 0) {
    optim::clip_grad_norm(model_->parameters(), config_.clip_grad_norm);
  }
  optimizer_->step();
}

void PlainStrategy::save(Checkpoint& checkpoint) {
  // Every process holds the same state: each can make the whole checkpoint (a memory copy).
  checkpoint.sections["optimizer"] = to_bytes([&](BinaryWriter& w) { optimizer_->save_state(w); });
}

void PlainStrategy::load(const Checkpoint& checkpoint) {
  if (!checkpoint.sections.count("optimizer")) {
    throw FormatError("checkpoint " + checkpoint.path +
                      " holds ZeRO-sharded optimizer state: resume it with "
                      "[parallel] strategy = \"zero\" (any number of processes)");
  }
  from_bytes(checkpoint.section("optimizer"), checkpoint.path,
             [&](BinaryReader& r) { optimizer_->load_state(r); });
}

std::unique_ptr<Strategy> make_plain_strategy(const Config& config, comm::ProcessGroup* group) {
  if (group != nullptr && group->size() > 1) {
    throw ConfigError(config.source, 0, "parallel.strategy",
                      detail::concat("is \"none\" but ", group->size(),
                                     " processes are training: set it to \"ddp\""));
  }
  return std::make_unique<PlainStrategy>(config.optimizer, group);
}

}  // namespace tessera::train
