#include <cmath>
#include <map>

#include "optimizer_factory.h"
#include "section_bytes.h"
#include "stage_state.h"
#include "strategy.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/core/error.h"
#include "tessera/optim/clip.h"
#include "tessera/parallel/fully_sharded.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::train {
namespace {

// Strategy "zero" with zero_stage = 3: every layer's parameters, gradients and optimizer state
// sharded over the processes (parallel::FullyShardedModel), each layer gathered only while it
// computes. Every process trains on its shard of the global batch, as with ddp. Each layer is
// sharded as soon as it is built, so no process ever holds the whole model. A checkpoint holds
// the whole model and optimizer state as one process holds them (gathered a layer at a time), so
// it resumes on one process, as stage 3 on any number, or as a pipeline.
class Zero3Strategy final : public Strategy {
 public:
  Zero3Strategy(const Config& config, comm::ProcessGroup* group)
      : Strategy(group, /*group_of_one=*/true), config_(config), sharded_(*this->group()) {
    if (config.parallel.sync_batchnorm) {
      // It swaps layers after the build, and the sharded layers are the ones built.
      throw ConfigError(config.source, 0, "parallel.sync_batchnorm",
                        "is not available with zero_stage = 3");
    }
  }

  [[nodiscard]] LayerSplit layer_split() override;
  void attach(nn::Sequential& model) override;
  optim::Optimizer& optimizer() override { return *optimizer_; }
  void zero_grad() override { optimizer_->zero_grad(); }
  double forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                          StepWindow& window) override;
  [[nodiscard]] Tensor predict(nn::Module& model, const Tensor& input) override;
  void finish_backward(StepWindow& window) override;
  [[nodiscard]] int64_t parameter_bytes(const nn::Module& /*model*/) const override {
    int64_t bytes = 0;
    for (const auto& shard : sharded_.shards())
      bytes += static_cast<int64_t>(shard.data().nbytes());
    return bytes;
  }
  void step() override;
  [[nodiscard]] std::string model_state(nn::Module& model) override;
  void load_model_state(nn::Module& model, const std::string& state,
                        const std::string& path) override;
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;

 private:
  // Where a parameter of the whole model lies: its unit and its place among the unit's.
  struct Place {
    size_t unit = 0, index = 0;
    Shape shape;
  };

  Config config_;
  parallel::FullyShardedModel sharded_;
  std::vector<std::pair<std::string, Place>> places_;  // in the model's order
  std::unique_ptr<optim::Optimizer> optimizer_;
};

LayerSplit Zero3Strategy::layer_split() {
  return {.ways = group()->size(),
          .split =
              [this](size_t /*index*/, std::shared_ptr<nn::Module> layer) {
                sharded_.add(*layer);
                return layer;
              },
          .hold = {},
          .every_layer = true};
}

void Zero3Strategy::attach(nn::Sequential& model) {
  if (model.size() != sharded_.size()) {
    throw InternalError("zero stage 3: the model was not built through layer_split()");
  }
  // The builder names each layer by its index.
  for (size_t unit = 0; unit < model.size(); ++unit) {
    const auto params = model[unit]->named_parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      places_.push_back(
          {detail::concat(unit, ".", params[i].first), {unit, i, params[i].second.shape()}});
    }
  }
  optimizer_ = make_optimizer(config_.optimizer, sharded_.shards());
}

double Zero3Strategy::forward_backward(nn::Module& /*model*/, const ModelIO& io,
                                       const LossFunction& loss, StepWindow& window) {
  return timed_forward_backward(
      [&] { return loss(sharded_.forward(autograd::Variable(io.input)), io.targets); }, window);
}

Tensor Zero3Strategy::predict(nn::Module& /*model*/, const Tensor& input) {
  autograd::NoGradGuard no_grad;
  return sharded_.forward(autograd::Variable(input)).data();
}

void Zero3Strategy::finish_backward(StepWindow& window) {
  sharded_.finish_backward();
  for (const auto& shard : sharded_.shards()) {
    // Every gradient reduce-scattered, every parameter gathered twice.
    window.bytes += 3.0 * static_cast<double>(shard.data().nbytes()) * group()->size();
  }
}

void Zero3Strategy::step() {
  if (const double max_norm = config_.optimizer.clip_grad_norm; max_norm > 0) {
    const std::vector<autograd::Variable> shards = sharded_.shards();
    double squares = optim::gradient_sum_of_squares(shards);
    group()->allreduce(&squares, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
    optim::clip_to_norm(shards, std::sqrt(squares), max_norm);
  }
  optimizer_->step();
}

// One layer gathered at a time, its parameters written under the whole model's names.
std::string Zero3Strategy::model_state(nn::Module& model) {
  const auto buffers = model.named_buffers();
  const auto& layers = dynamic_cast<nn::Sequential&>(model);
  std::string state = to_bytes([&](BinaryWriter& w) {
    w.write_u64(places_.size() + buffers.size());
    for (size_t unit = 0; unit < layers.size(); ++unit) {
      sharded_.gather(unit);
      for (const auto& [name, p] : layers[unit]->named_parameters()) {
        w.write_string(detail::concat(unit, ".", name));
        write_tensor(w, p.data());
      }
      sharded_.release(unit);
    }
    for (const auto& [name, b] : buffers) {
      w.write_string(name);
      write_tensor(w, b);
    }
  });
  return reports() ? state : std::string();
}

// Each process copies its shard's part of every parameter; nothing is gathered. Everything is
// checked before anything changes.
void Zero3Strategy::load_model_state(nn::Module& model, const std::string& state,
                                     const std::string& path) {
  std::map<std::string, Tensor> entries;
  from_bytes(state, path, [&](BinaryReader& r) {
    const uint64_t count = r.read_u64();
    for (uint64_t i = 0; i < count; ++i) {
      std::string name = r.read_string();
      entries[name] = read_tensor(r);
    }
  });
  auto entry = [&](const std::string& name, const Shape& shape) -> const Tensor& {
    const auto it = entries.find(name);
    if (it == entries.end())
      throw FormatError(detail::concat(path, ": missing entry '", name, "'"));
    if (it->second.shape() != shape || it->second.dtype() != DType::kFloat32) {
      throw ShapeError(detail::concat(
          path, ": entry '", name, "' is ", dtype_name(it->second.dtype()), " ",
          shape_str(it->second.shape()), ", the model has float32 ", shape_str(shape)));
    }
    return it->second;
  };
  const auto buffers = model.named_buffers();
  for (const auto& [name, place] : places_) (void)entry(name, place.shape);
  for (const auto& [name, b] : buffers) (void)entry(name, b.shape());
  for (const auto& [name, place] : places_) {
    Tensor shard = sharded_.shard(place.unit).data();
    sharded_.copy_to_shard(place.unit, place.index, entries.at(name), shard);
  }
  for (const auto& [name, b] : buffers) Tensor(b).copy_from(entries.at(name));
}

// The optimizer state of each layer's shard put together, a layer at a time, and cut into its
// parameters' shapes: one process's state.
void Zero3Strategy::save(Checkpoint& checkpoint) {
  std::vector<optim::ParamState> whole;
  size_t next = 0;  // the optimizer's index of the next shard
  for (size_t unit = 0; unit < sharded_.size(); ++unit) {
    if (!sharded_.shard(unit).defined()) continue;
    const optim::ParamState& state = optimizer_->state(next++);
    std::vector<Tensor> flats;
    for (const Tensor& b : state.buffers) flats.push_back(sharded_.gather_flat(unit, b));
    for (const auto& [name, place] : places_) {
      if (place.unit != unit) continue;
      optim::ParamState p{.step = state.step, .buffers = {}};
      for (const Tensor& flat : flats) {
        p.buffers.push_back(sharded_.parameter_in(unit, place.index, flat).clone());
      }
      whole.push_back(std::move(p));
    }
  }
  if (!reports()) return;
  write_whole_optimizer_state(checkpoint, *optimizer_, whole);
}

// Each shard's state from its parameters' whole states (a parameter that has none, never
// updated, gives zeros); checked before anything is set.
void Zero3Strategy::load(const Checkpoint& checkpoint) {
  const optim::SavedOptimizerState whole =
      read_whole_optimizer_state(checkpoint, *optimizer_, places_.size());
  std::vector<optim::ParamState> states;
  for (size_t unit = 0; unit < sharded_.size(); ++unit) {
    const autograd::Variable shard = sharded_.shard(unit);
    if (!shard.defined()) continue;
    optim::ParamState state;
    for (size_t k = 0; k < places_.size(); ++k) {
      const Place& place = places_[k].second;
      const optim::ParamState& p = whole.params[k];
      if (place.unit != unit || p.buffers.empty()) continue;
      state.step = std::max(state.step, p.step);
      state.buffers.resize(p.buffers.size());
      for (size_t j = 0; j < p.buffers.size(); ++j) {
        if (p.buffers[j].shape() != place.shape) {
          throw FormatError(detail::concat(
              checkpoint.path, ": optimizer state of '", places_[k].first, "' is ",
              shape_str(p.buffers[j].shape()), ", the parameter is ", shape_str(place.shape)));
        }
        if (!state.buffers[j].defined()) state.buffers[j] = Tensor::zeros(shard.shape());
        sharded_.copy_to_shard(unit, place.index, p.buffers[j], state.buffers[j]);
      }
    }
    states.push_back(std::move(state));
  }
  for (size_t i = 0; i < states.size(); ++i) optimizer_->set_state(i, std::move(states[i]));
  optimizer_->set_lr(whole.lr);
}

}  // namespace

std::unique_ptr<Strategy> make_zero3_strategy(const Config& config, comm::ProcessGroup* group) {
  return std::make_unique<Zero3Strategy>(config, group);
}

}  // namespace tessera::train
