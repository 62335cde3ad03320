#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "optimizer_factory.h"
#include "section_bytes.h"
#include "stage_state.h"
#include "strategy.h"
#include "tensor_split.h"
#include "tessera/core/error.h"
#include "tessera/nn/activation.h"
#include "tessera/optim/clip.h"
#include "tessera/optim/optimizer.h"
#include "tessera/parallel/model_sync.h"
#include "tessera/parallel/pipeline.h"
#include "tessera/parallel/stage_balance.h"

namespace tessera::train {
namespace {

// Parameters that several stages hold (a head tied to the embedding): their gradients are summed
// over those stages after backward, so that every copy takes the same step.
struct TiedGroup {
  std::unique_ptr<comm::ProcessGroup> group;  // the stages that hold them
  std::vector<autograd::Variable> params;     // this stage's copies
};

// Strategy "pipeline": the model's layers cut into one stage per process (parallel::Pipeline),
// each process with an optimizer for its stage's parameters. Every process of a pipeline reads the
// same batch (the first stage its inputs, the last its targets) and gets the batch's loss; rank 0
// reports. Strategy "hybrid" runs dp such pipelines side by side (dp x pp processes, rank
// d * pp + s running stage s of pipeline d), each on its shard of the global batch, the
// gradients of each stage averaged over the dp pipelines (as DDP does) before the step. With tp
// > 1 every stage's layers are split over tp processes besides (TensorSplitter): dp x pp x tp
// processes, rank (d * pp + s) * tp + t holding part t of stage s of pipeline d.
// A checkpoint holds the whole model and the whole optimizer state, as one process's ("model",
// "optimizer"): it resumes on one process or on any cut into stages.
class PipelineStrategy final : public Strategy {
 public:
  PipelineStrategy(const Config& config, comm::ProcessGroup* group);

  [[nodiscard]] int data_rank() const override { return data_rank_; }
  [[nodiscard]] int data_ranks() const override { return data_ranks_; }
  [[nodiscard]] bool reports() const override { return group()->rank() == 0; }
  [[nodiscard]] LayerRange layers(size_t count,
                                  const std::function<std::vector<double>()>& costs) override;
  [[nodiscard]] LayerSplit layer_split() override {
    return splitter_ ? splitter_->layer_split() : LayerSplit{};
  }
  void attach(nn::Sequential& model) override;
  optim::Optimizer& optimizer() override { return *optimizer_; }
  void zero_grad() override { optimizer_->zero_grad(); }
  double forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                          StepWindow& window) override;
  [[nodiscard]] Tensor predict(nn::Module& /*model*/, const Tensor& input) override {
    const Tensor out = pipeline_->forward(input);
    return splitter_ ? splitter_->whole_output(out) : out;
  }
  void finish_backward(StepWindow& window) override;
  void step() override;
  void add_metrics(const StepWindow& window, nlohmann::json& line) const override;
  [[nodiscard]] std::string model_state(nn::Module& model) override;
  void load_model_state(nn::Module& model, const std::string& state,
                        const std::string& path) override;
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    throw ConfigError(config_.source, 0, "parallel." + key, message);
  }
  void learn_layout();
  comm::ProcessGroup& pipe() const { return *pipe_; }

  Config config_;
  int data_rank_ = 0, data_ranks_ = 1;
  std::unique_ptr<comm::ProcessGroup> pipe_;  // this process's pipeline: rank s runs stage s
  std::unique_ptr<comm::ProcessGroup> dp_;    // the same stage of every pipeline (hybrid)
  std::unique_ptr<comm::ProcessGroup> tp_;    // the parts of this process's stage (tp > 1)
  // Every process of this pipeline, all its stages' parts (tp > 1; else the pipeline itself).
  std::unique_ptr<comm::ProcessGroup> replica_;
  std::unique_ptr<TensorSplitter> splitter_;  // tp > 1
  std::vector<size_t> bounds_;                // stage s has layers [bounds_[s], bounds_[s + 1])
  nn::Sequential* model_ = nullptr;
  std::unique_ptr<parallel::Pipeline> pipeline_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::vector<TiedGroup> tied_;
  // Copies whose gradient another stage counts in the gradient norm and whose state another
  // stage saves.
  std::set<std::string> counted_elsewhere_;
  // The whole model's parameters in one process's order (each stage's own, stage by stage).
  std::map<std::string, size_t> whole_index_;
  double idle_ = 0, busy_ = 0;  // this window's
};

PipelineStrategy::PipelineStrategy(const Config& config, comm::ProcessGroup* group)
    : Strategy(group, /*group_of_one=*/true), config_(config) {
  const ParallelConfig& p = config_.parallel;
  const int world = this->group()->size();
  const bool hybrid = p.strategy == "hybrid";
  if (!hybrid && p.tp > 1) {
    fail("tp",
         "strategy \"pipeline\" does not split layers: strategy \"hybrid\" with pp and tp "
         "does both");
  }
  const int64_t tp = std::max<int64_t>(p.tp, 1);
  const int64_t pp = p.pp == 0 ? world / tp : p.pp;
  if (!hybrid && pp != world) {
    fail("pp", detail::concat("is ", p.pp, " but ", world,
                              " processes train; strategy \"pipeline\" runs one stage on each "
                              "process (pp = 0 or ",
                              world, "); strategy \"hybrid\" runs dp pipelines of pp stages"));
  }
  const int64_t dp = p.dp == 0 ? world / (pp * tp) : p.dp;
  if (pp < 1 || dp * pp * tp != world) {
    fail(p.dp == 0 ? "pp" : "dp", detail::concat("dp ", dp, " x pp ", pp, " x tp ", tp,
                                                 " is not the ", world, " processes that train"));
  }
  const int rank = this->group()->rank();
  const auto part = static_cast<int>(rank % tp);
  const auto stage = static_cast<int>(rank / tp % pp);
  data_rank_ = static_cast<int>(rank / (pp * tp));
  data_ranks_ = static_cast<int>(dp);
  const std::string name = this->group()->name();
  const auto lane = static_cast<int>(data_rank_ * tp + part);
  pipe_ = this->group()->split(lane, stage, detail::concat(name, "/pp", lane));
  const auto place = static_cast<int>(stage * tp + part);
  dp_ = this->group()->split(dp > 1 ? place : comm::kNoColor, data_rank_,
                             detail::concat(name, "/dp", place));
  const auto block = static_cast<int>(data_rank_ * pp + stage);
  tp_ = this->group()->split(tp > 1 ? block : comm::kNoColor, part,
                             detail::concat(name, "/tp", block));
  replica_ = this->group()->split(tp > 1 ? data_rank_ : comm::kNoColor, rank,
                                  detail::concat(name, "/replica", data_rank_));
  if (tp_) splitter_ = std::make_unique<TensorSplitter>(config_, *tp_);
}

LayerRange PipelineStrategy::layers(size_t count,
                                    const std::function<std::vector<double>()>& costs) {
  const ParallelConfig& p = config_.parallel;
  const int stages = pipe().size();
  const int stage = pipe().rank();
  if (count < static_cast<size_t>(stages)) {
    fail("pp", detail::concat("the model has ", count, " layers, fewer than the ", stages,
                              " stages: every stage needs a layer"));
  }
  const int64_t batch = config_.data.batch_per_worker ? config_.data.batch_size
                                                      : config_.data.batch_size / data_ranks_;
  if (batch < p.micro_batches) {
    fail("micro_batches", detail::concat("is ", p.micro_batches,
                                         " but a pipeline's batch has only ", batch, " samples"));
  }
  if (!p.stage_cuts.empty()) {
    if (p.stage_cuts.size() + 1 != static_cast<size_t>(stages)) {
      fail("stage_cuts",
           detail::concat("gives ", p.stage_cuts.size(), " cuts for ", stages, " stages; it needs ",
                          stages - 1, " (or none, to cut by measured time)"));
    }
    try {
      bounds_ = parallel::stage_boundaries(count, p.stage_cuts);
    } catch (const Error& e) {
      fail("stage_cuts", e.what());
    }
  } else if (stages == 1) {
    bounds_ = {0, count};
  } else {
    // Rank 0 measures, so that every stage of every pipeline cuts alike.
    std::vector<double> c = group()->rank() == 0 ? costs() : std::vector<double>(count);
    group()->broadcast(c.data(), c.size(), comm::DataType::kFloat64, 0)->wait();
    bounds_ = parallel::balance_stages(c, stages);
  }
  return {bounds_[static_cast<size_t>(stage)], bounds_[static_cast<size_t>(stage) + 1]};
}

// The generator the stage's dropout layers draw from (the Trainer gives them all the same one).
Generator* dropout_generator(nn::Module& model) {
  Generator* gen = nullptr;
  model.apply([&](nn::Module& m) {
    if (auto* d = dynamic_cast<nn::Dropout*>(&m)) gen = &d->generator();
  });
  return gen;
}

void PipelineStrategy::attach(nn::Sequential& model) {
  model_ = &model;
  const ParallelConfig& p = config_.parallel;
  pipeline_ = std::make_unique<parallel::Pipeline>(
      model, pipe(),
      parallel::PipelineOptions{.micro_batches = static_cast<int>(p.micro_batches),
                                .schedule = parallel::parse_pipeline_schedule(p.schedule),
                                .recompute = p.recompute,
                                .dropout = dropout_generator(model)});
  optimizer_ = make_optimizer(config_.optimizer, model.parameters());
  learn_layout();
}

// The layer a parameter name belongs to: "12.attention.qkv.weight" is layer 12's.
size_t layer_of(const std::string& name) { return std::stoul(name.substr(0, name.find('.'))); }

// Learns from every stage which parameters it holds: where each lies in the whole model, and
// which several stages hold (tied), each of those tied over a group of its holders.
void PipelineStrategy::learn_layout() {
  const int stage = pipe().rank();
  nlohmann::json names = nlohmann::json::array();
  std::map<std::string, autograd::Variable> mine;
  for (const auto& [name, param] : model_->named_parameters()) {
    names.push_back(name);
    mine.emplace(name, param);
  }
  std::map<std::string, std::vector<int>> holders;
  const std::vector<std::string> all = parallel::allgather_bytes(pipe(), names.dump());
  for (size_t s = 0; s < all.size(); ++s) {
    for (const auto& entry : nlohmann::json::parse(all[s])) {
      const auto name = entry.get<std::string>();
      holders[name].push_back(static_cast<int>(s));
      const size_t layer = layer_of(name);
      if (layer >= bounds_[s] && layer < bounds_[s + 1]) {
        whole_index_.emplace(name, whole_index_.size());
      }
    }
  }
  std::map<std::vector<int>, std::vector<std::string>> shared;  // the same order on every stage
  for (const auto& [name, stages] : holders) {
    if (stages.size() > 1) shared[stages].push_back(name);
  }
  for (const auto& [stages, shared_names] : shared) {
    const bool member = std::find(stages.begin(), stages.end(), stage) != stages.end();
    auto sub =
        pipe().split(member ? 0 : comm::kNoColor, stage, detail::concat(pipe().name(), "/tied"));
    if (!member) continue;
    TiedGroup tie{std::move(sub), {}};
    for (const auto& name : shared_names) {
      tie.params.push_back(mine.at(name));
      const size_t layer = layer_of(name);
      if (layer < bounds_[stage] || layer >= bounds_[stage + 1]) counted_elsewhere_.insert(name);
    }
    tied_.push_back(std::move(tie));
  }
}

double PipelineStrategy::forward_backward(nn::Module& /*model*/, const ModelIO& io,
                                          const LossFunction& loss, StepWindow& window) {
  if (window.steps == 0) idle_ = busy_ = 0;
  const double l = splitter_ ? pipeline_->train_batch(
                                   io.input, io.targets,
                                   [&](const autograd::Variable& output, const Tensor& targets) {
                                     return splitter_->loss(output, targets, loss);
                                   })
                             : pipeline_->train_batch(io.input, io.targets, loss);
  const parallel::PipelineStepStats& s = pipeline_->last_step();
  // Forward and backward interleave: their time together is the stage's compute.
  window.forward += s.compute;
  window.comm_wait += s.idle;
  idle_ += s.idle;
  busy_ += s.seconds;
  return l;
}

void PipelineStrategy::finish_backward(StepWindow& window) {
  for (TiedGroup& tie : tied_) {
    for (autograd::Variable& p : tie.params) {
      Tensor g = p.grad().defined() ? p.grad().contiguous() : Tensor::zeros(p.shape());
      tie.group
          ->allreduce(g.data<float>(), static_cast<size_t>(g.numel()), comm::DataType::kFloat32,
                      comm::ReduceOp::kSum)
          ->wait();
      p.set_grad(g);
      window.bytes += static_cast<double>(g.nbytes());
    }
  }
  if (!dp_) return;
  // Each pipeline's loss is the mean over its shard: the mean of their gradients is the global
  // batch's.
  const auto scale = static_cast<float>(1.0 / dp_->size());
  for (autograd::Variable& p : model_->parameters()) {
    Tensor g = p.grad().defined() ? p.grad().contiguous() : Tensor::zeros(p.shape());
    dp_->allreduce(g.data<float>(), static_cast<size_t>(g.numel()), comm::DataType::kFloat32,
                   comm::ReduceOp::kSum)
        ->wait();
    for (float& v : g.span<float>()) v *= scale;
    p.set_grad(g);
    window.bytes += static_cast<double>(g.nbytes());
  }
}

void PipelineStrategy::step() {
  if (const double max_norm = config_.optimizer.clip_grad_norm; max_norm > 0) {
    // Each tied weight counted on one stage; a split one's parts on every process of its stage, a
    // whole one on the stage's first part only.
    std::vector<autograd::Variable> split, whole;
    for (const auto& [name, p] : model_->named_parameters()) {
      if (counted_elsewhere_.count(name)) continue;
      (splitter_ && splitter_->split_of(name).dim >= 0 ? split : whole).push_back(p);
    }
    double squares = optim::gradient_sum_of_squares(split);
    if (!tp_ || tp_->rank() == 0) squares += optim::gradient_sum_of_squares(whole);
    comm::ProcessGroup& replica = replica_ ? *replica_ : pipe();
    replica.allreduce(&squares, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
    optim::clip_to_norm(model_->parameters(), std::sqrt(squares), max_norm);
  }
  optimizer_->step();
}

void PipelineStrategy::add_metrics(const StepWindow& /*window*/, nlohmann::json& line) const {
  line["pipeline_idle"] = busy_ > 0 ? idle_ / busy_ : 0.0;
}

std::string PipelineStrategy::model_state(nn::Module& model) {
  const std::vector<std::string> stages = parallel::allgather_bytes(
      pipe(), splitter_ ? splitter_->whole_state(model) : Strategy::model_state(model));
  return reports() ? merge_stage_states(stages, "pipeline stage state") : std::string();
}

void PipelineStrategy::load_model_state(nn::Module& model, const std::string& state,
                                        const std::string& path) {
  Strategy::load_model_state(
      model, stage_state(state, model, path, splitter_ ? splitter_->cut(path) : EntryPart{}), path);
}

// Each stage sends the state of the parameters it owns; the first puts them together in the whole
// model's order, as one process would save it.
void PipelineStrategy::save(Checkpoint& checkpoint) {
  std::vector<optim::ParamState> own;
  std::vector<std::pair<std::string, autograd::Variable>> owned;
  const auto params = model_->named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    if (counted_elsewhere_.count(params[i].first)) continue;
    own.push_back(optimizer_->state(i));
    owned.push_back(params[i]);
  }
  if (splitter_) own = splitter_->whole_states(owned, std::move(own));
  const std::vector<std::string> stages = parallel::allgather_bytes(
      pipe(), to_bytes([&](BinaryWriter& w) {
        optim::write_optimizer_state(w, optimizer_->kind(), optimizer_->lr(), own);
      }));
  if (!reports()) return;
  std::vector<optim::ParamState> whole;
  for (const std::string& bytes : stages) {
    from_bytes(bytes, "pipeline stage state", [&](BinaryReader& r) {
      optim::SavedOptimizerState s = optim::read_optimizer_state(r);
      for (auto& p : s.params) whole.push_back(std::move(p));
    });
  }
  write_whole_optimizer_state(checkpoint, *optimizer_, whole);
}

// Takes this stage's parameters' state out of the whole model's, however the checkpoint's model
// was cut (or not).
void PipelineStrategy::load(const Checkpoint& checkpoint) {
  optim::SavedOptimizerState whole =
      read_whole_optimizer_state(checkpoint, *optimizer_, whole_index_.size());
  const auto params = model_->named_parameters();
  std::vector<optim::ParamState> mine;
  for (const auto& [name, p] : params) mine.push_back(whole.params.at(whole_index_.at(name)));
  if (splitter_) splitter_->cut_states(params, mine, checkpoint.path);
  for (size_t i = 0; i < params.size(); ++i) optimizer_->set_state(i, std::move(mine[i]));
  optimizer_->set_lr(whole.lr);
}

}  // namespace

std::unique_ptr<Strategy> make_pipeline_strategy(const Config& config, comm::ProcessGroup* group) {
  return std::make_unique<PipelineStrategy>(config, group);
}

}  // namespace tessera::train
