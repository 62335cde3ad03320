#include <cmath>

#include "optimizer_factory.h"
#include "section_bytes.h"
#include "stage_state.h"
#include "strategy.h"
#include "tessera/core/error.h"
#include "tessera/nn/embedding.h"
#include "tessera/nn/linear.h"
#include "tessera/optim/clip.h"
#include "tessera/parallel/tensor_parallel.h"
#include "tessera/parallel/vocab_parallel.h"
#include "tessera/tensor/tensor_io.h"

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
  [[nodiscard]] LayerSplit layer_split() override;
  void attach(nn::Sequential& model) override;
  optim::Optimizer& optimizer() override { return *optimizer_; }
  void zero_grad() override { optimizer_->zero_grad(); }
  double forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                          StepWindow& window) override;
  [[nodiscard]] Tensor predict(nn::Module& model, const Tensor& input) override;
  void step() override;
  [[nodiscard]] std::string model_state(nn::Module& model) override;
  void load_model_state(nn::Module& model, const std::string& state,
                        const std::string& path) override;
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;

 private:
  std::shared_ptr<nn::Module> split(size_t index, std::shared_ptr<nn::Module> whole);
  // How parameter `name` lies over the processes (whole unless a split layer says otherwise).
  [[nodiscard]] parallel::ParameterSplit split_of(const std::string& name) const;
  comm::ProcessGroup& tp() const { return *group(); }

  Config config_;
  nn::Sequential* model_ = nullptr;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::shared_ptr<parallel::VocabParallelEmbedding> embedding_;  // the last, for a tied head
  bool split_head_ = false;           // the output is this process's columns of the logits
  parallel::ParameterSplits splits_;  // by the model's parameter names
};

TensorStrategy::TensorStrategy(const Config& config, comm::ProcessGroup* group)
    : Strategy(group, /*group_of_one=*/true), config_(config) {
  const ParallelConfig& p = config_.parallel;
  const int world = this->group()->size();
  if (p.tp != 0 && p.tp != world) {
    throw ConfigError(config_.source, 0, "parallel.tp",
                      detail::concat("is ", p.tp, " but ", world,
                                     " processes train; strategy \"tensor\" splits the layers over "
                                     "every process (tp = 0 or ",
                                     world, ")"));
  }
  const std::vector<LayerSpec>& layers = config_.model.layers;
  if (!layers.empty() && layers.back().type == "linear" && config_.train.loss != "next_token" &&
      config_.train.loss != "cross_entropy") {
    throw ConfigError(config_.source, 0, "train.loss",
                      "is \"" + config_.train.loss +
                          "\" but strategy \"tensor\" splits the output layer's logits, which "
                          "only cross_entropy and next_token take");
  }
  if (config_.train.label_smoothing > 0 && !layers.empty() && layers.back().type == "linear") {
    throw ConfigError(config_.source, 0, "train.label_smoothing",
                      "is not available with strategy \"tensor\" (the logits are split)");
  }
}

LayerSplit TensorStrategy::layer_split() {
  return {.ways = tp().size(), .split = [this](size_t index, std::shared_ptr<nn::Module> whole) {
            return split(index, std::move(whole));
          }};
}

std::shared_ptr<nn::Module> TensorStrategy::split(size_t index, std::shared_ptr<nn::Module> whole) {
  std::shared_ptr<nn::Module> part;
  try {
    if (auto* e = dynamic_cast<nn::TokenEmbedding*>(whole.get())) {
      embedding_ = std::make_shared<parallel::VocabParallelEmbedding>(*e, tp());
      part = embedding_;
    } else if (auto* b = dynamic_cast<nn::TransformerBlock*>(whole.get())) {
      part = std::make_shared<parallel::TensorParallelTransformerBlock>(*b, tp());
    } else if (auto* l = dynamic_cast<nn::Linear*>(whole.get())) {
      part = std::make_shared<parallel::ColumnParallelLinear>(*l, tp());
      split_head_ = true;
    } else if (dynamic_cast<nn::TiedLinear*>(whole.get()) != nullptr) {
      part = std::make_shared<parallel::ColumnParallelLinear>(embedding_->tokens(), tp());
      split_head_ = true;
    } else {
      throw InternalError("strategy tensor: cannot split " + whole->name());
    }
  } catch (const ValueError& e) {
    throw ConfigError(config_.source, config_.model.layers[index].line,
                      detail::concat("model.layers[", index, "]"),
                      detail::concat(e.what(), " (parallel.tp = ", tp().size(), ")"));
  }
  for (const auto& [name, s] : dynamic_cast<parallel::SplitLayer&>(*part).parameter_splits()) {
    splits_[detail::concat(index, ".", name)] = s;
  }
  return part;
}

parallel::ParameterSplit TensorStrategy::split_of(const std::string& name) const {
  const auto it = splits_.find(name);
  return it == splits_.end() ? parallel::ParameterSplit{} : it->second;
}

void TensorStrategy::attach(nn::Sequential& model) {
  model_ = &model;
  optimizer_ = make_optimizer(config_.optimizer, model.parameters());
}

double TensorStrategy::forward_backward(nn::Module& model, const ModelIO& io,
                                        const LossFunction& loss, StepWindow& window) {
  if (!split_head_) return Strategy::forward_backward(model, io, loss, window);
  const auto t0 = std::chrono::steady_clock::now();
  const autograd::Variable out = model(autograd::Variable(io.input));
  const autograd::Variable rows = autograd::reshape(out, {-1, out.shape().back()});
  autograd::Variable l = parallel::vocab_parallel_cross_entropy(rows, io.targets, tp());
  const auto t1 = std::chrono::steady_clock::now();
  l.backward();
  const auto t2 = std::chrono::steady_clock::now();
  window.forward += std::chrono::duration<double>(t1 - t0).count();
  window.backward += std::chrono::duration<double>(t2 - t1).count();
  return l.data().item();
}

Tensor TensorStrategy::predict(nn::Module& model, const Tensor& input) {
  const Tensor out = Strategy::predict(model, input);
  if (!split_head_) return out;
  return parallel::gather_slices(out, {static_cast<int>(out.dim()) - 1, 1}, tp());
}

// The gradient norm counts each split parameter's parts on every process and each whole one once.
void TensorStrategy::step() {
  if (const double max_norm = config_.optimizer.clip_grad_norm; max_norm > 0) {
    std::vector<autograd::Variable> split, whole;
    for (const auto& [name, p] : model_->named_parameters()) {
      (split_of(name).dim >= 0 ? split : whole).push_back(p);
    }
    double squares = optim::gradient_sum_of_squares(split);
    tp().allreduce(&squares, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
    squares += optim::gradient_sum_of_squares(whole);
    optim::clip_to_norm(model_->parameters(), std::sqrt(squares), max_norm);
  }
  optimizer_->step();
}

// One tensor put together at a time, in the one-process model's order.
std::string TensorStrategy::model_state(nn::Module& model) {
  const auto params = model.named_parameters();
  const auto buffers = model.named_buffers();
  std::string state = to_bytes([&](BinaryWriter& w) {
    w.write_u64(params.size() + buffers.size());
    for (const auto& [name, p] : params) {
      const Tensor whole = parallel::gather_slices(p.data(), split_of(name), tp());
      w.write_string(name);
      write_tensor(w, whole);
    }
    for (const auto& [name, b] : buffers) {
      w.write_string(name);
      write_tensor(w, b);
    }
  });
  return reports() ? state : std::string();
}

void TensorStrategy::load_model_state(nn::Module& model, const std::string& state,
                                      const std::string& path) {
  const auto part = [&](const std::string& name, const Tensor& whole) {
    try {
      return parallel::slice_for_rank(whole, split_of(name), tp().rank(), tp().size());
    } catch (const ValueError& e) {
      throw FormatError(
          detail::concat(path, ": entry '", name, "' ", shape_str(whole.shape()), ": ", e.what()));
    }
  };
  Strategy::load_model_state(model, stage_state(state, model, path, part), path);
}

void TensorStrategy::save(Checkpoint& checkpoint) {
  const auto params = model_->named_parameters();
  std::vector<optim::ParamState> whole;
  for (size_t i = 0; i < params.size(); ++i) {
    optim::ParamState s = optimizer_->state(i);
    for (Tensor& b : s.buffers) b = parallel::gather_slices(b, split_of(params[i].first), tp());
    whole.push_back(std::move(s));
  }
  if (!reports()) return;
  checkpoint.sections["optimizer"] = to_bytes([&](BinaryWriter& w) {
    optim::write_optimizer_state(w, optimizer_->kind(), optimizer_->lr(), whole);
  });
}

void TensorStrategy::load(const Checkpoint& checkpoint) {
  if (!checkpoint.sections.count("optimizer")) {
    throw FormatError(checkpoint.path +
                      " holds ZeRO-sharded optimizer state: resume it with [parallel] strategy = "
                      "\"zero\" (its model loads anywhere: tessera eval)");
  }
  optim::SavedOptimizerState whole;
  from_bytes(checkpoint.section("optimizer"), checkpoint.path,
             [&](BinaryReader& r) { whole = optim::read_optimizer_state(r); });
  const auto params = model_->named_parameters();
  if (whole.kind != optimizer_->kind() || whole.params.size() != params.size()) {
    throw FormatError(detail::concat(checkpoint.path, ": optimizer state for ", whole.params.size(),
                                     " parameters of '", whole.kind, "', this model has ",
                                     params.size(), " of '", optimizer_->kind(), "'"));
  }
  // Every part is cut and checked before any is set, so a bad checkpoint changes nothing.
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, param] = params[i];
    for (Tensor& b : whole.params[i].buffers) {
      try {
        b = parallel::slice_for_rank(b, split_of(name), tp().rank(), tp().size());
      } catch (const ValueError& e) {
        throw FormatError(
            detail::concat(checkpoint.path, ": optimizer state of '", name, "': ", e.what()));
      }
      if (b.shape() != param.shape()) {
        throw FormatError(detail::concat(checkpoint.path, ": optimizer state of '", name,
                                         "' cuts to ", shape_str(b.shape()), ", the parameter is ",
                                         shape_str(param.shape())));
      }
    }
  }
  for (size_t i = 0; i < params.size(); ++i) optimizer_->set_state(i, std::move(whole.params[i]));
  optimizer_->set_lr(whole.lr);
}

}  // namespace

std::unique_ptr<Strategy> make_tensor_strategy(const Config& config, comm::ProcessGroup* group) {
  return std::make_unique<TensorStrategy>(config, group);
}

}  // namespace tessera::train
