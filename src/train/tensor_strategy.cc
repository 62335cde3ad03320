#include <cmath>

#include "optimizer_factory.h"
#include "section_bytes.h"
#include "stage_state.h"
#include "strategy.h"
#include "tensor_split.h"
#include "tessera/core/error.h"
#include "tessera/optim/clip.h"

namespace tessera::train {
namespace {

// Strategy "tensor": every layer worth splitting is split over all the processes, Megatron-LM's
// way: token embeddings by vocabulary rows, transformer blocks by attention heads and MLP hidden
// units, an output head by its outputs (the classes, or the vocabulary), whose logits stay split
// and go straight into the vocabulary-parallel cross-entropy. The other layers are whole on every
// process. Every process reads the whole batch and runs the same step; each holds and updates
// its part of the split parameters, and its own copy of the whole ones, whose gradients come out
// equal on every process. A checkpoint holds the whole model and optimizer state as one process
// holds them (gathered here, cut again when loaded), so it resumes on one process or any tp.
class TensorStrategy final : public Strategy {
 public:
  TensorStrategy(const Config& config, comm::ProcessGroup* group);

  [[nodiscard]] int data_rank() const override { return 0; }
  [[nodiscard]] int data_ranks() const override { return 1; }
  [[nodiscard]] bool reports() const override { return group()->rank() == 0; }
  [[nodiscard]] LayerSplit layer_split() override { return splitter_.layer_split(); }
  void attach(nn::Sequential& model) override;
  optim::Optimizer& optimizer() override { return *optimizer_; }
  void zero_grad() override { optimizer_->zero_grad(); }
  double forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                          StepWindow& window) override;
  [[nodiscard]] Tensor predict(nn::Module& model, const Tensor& input) override {
    return splitter_.whole_output(Strategy::predict(model, input));
  }
  void step() override;
  [[nodiscard]] std::string model_state(nn::Module& model) override {
    std::string state = splitter_.whole_state(model);
    return reports() ? state : std::string();
  }
  void load_model_state(nn::Module& model, const std::string& state,
                        const std::string& path) override {
    Strategy::load_model_state(model, stage_state(state, model, path, splitter_.cut(path)), path);
  }
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;

 private:
  Config config_;
  TensorSplitter splitter_;
  nn::Sequential* model_ = nullptr;
  std::unique_ptr<optim::Optimizer> optimizer_;
};

TensorStrategy::TensorStrategy(const Config& config, comm::ProcessGroup* group)
    : Strategy(group, /*group_of_one=*/true), config_(config), splitter_(config_, *this->group()) {
  const int64_t tp = config_.parallel.tp;
  const int world = this->group()->size();
  if (tp != 0 && tp != world) {
    throw ConfigError(config_.source, 0, "parallel.tp",
                      detail::concat("is ", tp, " but ", world,
                                     " processes train; strategy \"tensor\" splits the layers over "
                                     "every process (tp = 0 or ",
                                     world, "; strategy \"hybrid\" combines it with others)"));
  }
}

void TensorStrategy::attach(nn::Sequential& model) {
  model_ = &model;
  optimizer_ = make_optimizer(config_.optimizer, model.parameters());
}

double TensorStrategy::forward_backward(nn::Module& model, const ModelIO& io,
                                        const LossFunction& loss, StepWindow& window) {
  return timed_forward_backward(
      [&] { return splitter_.loss(model(autograd::Variable(io.input)), io.targets, loss); },
      window);
}

// The gradient norm counts each split parameter's parts on every process and each whole one once.
void TensorStrategy::step() {
  if (const double max_norm = config_.optimizer.clip_grad_norm; max_norm > 0) {
    std::vector<autograd::Variable> split, whole;
    for (const auto& [name, p] : model_->named_parameters()) {
      (splitter_.split_of(name).dim >= 0 ? split : whole).push_back(p);
    }
    double squares = optim::gradient_sum_of_squares(split);
    group()->allreduce(&squares, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
    squares += optim::gradient_sum_of_squares(whole);
    optim::clip_to_norm(model_->parameters(), std::sqrt(squares), max_norm);
  }
  optimizer_->step();
}

void TensorStrategy::save(Checkpoint& checkpoint) {
  const auto params = model_->named_parameters();
  std::vector<optim::ParamState> states;
  for (size_t i = 0; i < params.size(); ++i) states.push_back(optimizer_->state(i));
  const std::vector<optim::ParamState> whole = splitter_.whole_states(params, std::move(states));
  if (!reports()) return;
  write_whole_optimizer_state(checkpoint, *optimizer_, whole);
}

void TensorStrategy::load(const Checkpoint& checkpoint) {
  const auto params = model_->named_parameters();
  optim::SavedOptimizerState whole =
      read_whole_optimizer_state(checkpoint, *optimizer_, params.size());
  splitter_.cut_states(params, whole.params, checkpoint.path);
  for (size_t i = 0; i < params.size(); ++i) optimizer_->set_state(i, std::move(whole.params[i]));
  optimizer_->set_lr(whole.lr);
}

}  // namespace

std::unique_ptr<Strategy> make_tensor_strategy(const Config& config, comm::ProcessGroup* group) {
  return std::make_unique<TensorStrategy>(config, group);
}

}  // namespace tessera::train
