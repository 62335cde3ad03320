#include "strategy.h"

#include "section_bytes.h"
#include "tessera/autograd/grad_mode.h"
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

LayerRange Strategy::layers(size_t count, const std::function<std::vector<double>()>& /*costs*/) {
  return {0, count};
}

double Strategy::timed_forward_backward(const std::function<autograd::Variable()>& forward,
                                        StepWindow& window) {
  const auto t0 = std::chrono::steady_clock::now();
  autograd::Variable l = forward();
  const auto t1 = std::chrono::steady_clock::now();
  l.backward();
  const auto t2 = std::chrono::steady_clock::now();
  window.forward += std::chrono::duration<double>(t1 - t0).count();
  window.backward += std::chrono::duration<double>(t2 - t1).count();
  return l.data().item();
}

double Strategy::forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                                  StepWindow& window) {
  return timed_forward_backward(
      [&] { return loss(model(autograd::Variable(io.input)), io.targets); }, window);
}

Tensor Strategy::predict(nn::Module& model, const Tensor& input) {
  autograd::NoGradGuard no_grad;
  return model(autograd::Variable(input)).data();
}

std::string Strategy::model_state(nn::Module& model) {
  return to_bytes([&](BinaryWriter& w) { model.save_state(w); });
}

void Strategy::load_model_state(nn::Module& model, const std::string& state,
                                const std::string& path) {
  from_bytes(state, path, [&](BinaryReader& r) { model.load_state(r); });
}

int64_t Strategy::optimizer_state_bytes() {
  const optim::Optimizer& opt = optimizer();
  int64_t bytes = 0;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    for (const auto& b : opt.state(i).buffers) bytes += static_cast<int64_t>(b.nbytes());
  }
  return bytes;
}

int64_t Strategy::parameter_bytes(const nn::Module& model) const {
  int64_t bytes = 0;
  for (const auto& p : model.parameters()) bytes += static_cast<int64_t>(p.data().nbytes());
  return bytes;
}

void write_whole_optimizer_state(Checkpoint& checkpoint, const optim::Optimizer& optimizer,
                                 const std::vector<optim::ParamState>& params) {
  checkpoint.sections["optimizer"] = to_bytes([&](BinaryWriter& w) {
    optim::write_optimizer_state(w, optimizer.kind(), optimizer.lr(), params);
  });
}

optim::SavedOptimizerState read_whole_optimizer_state(const Checkpoint& checkpoint,
                                                      const optim::Optimizer& optimizer,
                                                      size_t count) {
  if (!checkpoint.sections.count("optimizer")) {
    throw FormatError(checkpoint.path +
                      " holds ZeRO stage 1/2's sharded optimizer state: resume it with [parallel] "
                      "strategy = \"zero\", zero_stage 1 or 2 (its model loads anywhere: tessera "
                      "eval)");
  }
  optim::SavedOptimizerState whole;
  from_bytes(checkpoint.section("optimizer"), checkpoint.path,
             [&](BinaryReader& r) { whole = optim::read_optimizer_state(r); });
  if (whole.kind != optimizer.kind() || whole.params.size() != count) {
    throw FormatError(detail::concat(checkpoint.path, ": optimizer state for ", whole.params.size(),
                                     " parameters of '", whole.kind, "', this model has ", count,
                                     " of '", optimizer.kind(), "'"));
  }
  return whole;
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
  if (name == "tensor") return make_tensor_strategy(config, group);
  if (name == "ps") return make_ps_strategy(config, options);
  if (name == "pipeline" || name == "hybrid") return make_pipeline_strategy(config, group);
  // load_config admits only the names above.
  throw InternalError("make_strategy: unknown strategy \"" + name + "\"");
}

}  // namespace tessera::train
