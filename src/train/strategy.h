#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tessera/comm/process_group.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/optimizer.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/config.h"
#include "tessera/train/loss.h"
#include "tessera/train/model_builder.h"
#include "tessera/train/trainer.h"

namespace tessera::train {

// Timings and traffic of the steps since the last metrics line.
struct StepWindow {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int64_t samples = 0;
  double forward = 0, backward = 0, comm_wait = 0, optimizer = 0;
  int steps = 0;
  // Summed by Strategy::finish_backward, reported by Strategy::add_metrics.
  double bytes = 0, hidden = 0;
};

// The loss of a batch's (or a micro-batch's) model output against its targets.
using LossFunction =
    std::function<autograd::Variable(const autograd::Variable& output, const Tensor& targets)>;

// How the processes of a job train one model together ([parallel] strategy): who trains on which
// part of each global batch, how gradients become an update, and where the optimizer state lives.
// The Trainer builds the model for data shard data_rank() of data_ranks(), hands it to attach(),
// and then runs every step as
//
//   zero_grad(); forward_backward(...); finish_backward(window); step();
//
// A strategy that runs on one process as it does on several (ddp, zero) gets a group of one there,
// so that its checkpoints are the same. Borrows the group and the model. Not thread-safe; one per
// process.
class Strategy {
 public:
  virtual ~Strategy();
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  // The part of every global batch this process trains on (the data sampler's and the dropout
  // masks' shard). Data rank 0 writes the metrics, the progress and the checkpoints.
  [[nodiscard]] virtual int data_rank() const;
  [[nodiscard]] virtual int data_ranks() const;
  // The processes that report together: metrics, evaluation and resume are collectives over it.
  // nullptr: this process reports alone. Processes of one data rank evaluate the same samples.
  [[nodiscard]] virtual comm::ProcessGroup* group() const { return group_; }
  // Whether this process writes the metrics, the progress and the checkpoints.
  [[nodiscard]] virtual bool reports() const { return data_rank() == 0; }

  // The layers of the model's `count` this process builds: all, or a pipeline stage's. `costs`
  // gives each layer's measured time; only a strategy that balances stages by it calls it.
  [[nodiscard]] virtual LayerRange layers(size_t count,
                                          const std::function<std::vector<double>()>& costs);

  // How this process holds the layers it builds: whole, or a tensor-parallel rank's part.
  [[nodiscard]] virtual LayerSplit layer_split() { return {}; }

  // Takes the model built for this process's shard; called once, before any call below.
  virtual void attach(nn::Sequential& model) = 0;
  // The optimizer the learning-rate schedule drives and whose lr the metrics show.
  [[nodiscard]] virtual optim::Optimizer& optimizer() = 0;
  virtual void zero_grad() = 0;
  // Forward and backward of this process's part of the batch: leaves the gradients in the
  // parameters, adds the time of each to `window` and returns the batch's loss.
  virtual double forward_backward(nn::Module& model, const ModelIO& io, const LossFunction& loss,
                                  StepWindow& window);
  // The whole model's output for `input`, without gradients (evaluation).
  [[nodiscard]] virtual Tensor predict(nn::Module& model, const Tensor& input);
  // Between backward and step(): leaves the gradients ready for step(), adding what it sent to
  // `window`. The Trainer counts its time as communication wait.
  virtual void finish_backward(StepWindow& /*window*/) {}
  // Clips the gradients as [optimizer] clip_grad_norm asks and updates the parameters.
  virtual void step() = 0;
  // The step this process starts at: 0, or where a worker started again after it died goes on.
  [[nodiscard]] virtual int64_t first_step() const { return 0; }
  // Bytes of optimizer state this process holds.
  [[nodiscard]] virtual int64_t optimizer_state_bytes();
  // Bytes of the model's parameters this process holds (its part of a split model's).
  [[nodiscard]] virtual int64_t parameter_bytes(const nn::Module& model) const;
  // Adds the strategy's own fields to the metrics line of the steps in `window`.
  virtual void add_metrics(const StepWindow& /*window*/, nlohmann::json& /*line*/) const {}

  // The model's state as a one-process model holds it (Module::save_state), for the checkpoint's
  // "model" section; collective where the model is split over the processes.
  [[nodiscard]] virtual std::string model_state(nn::Module& model);
  // Loads such a state (from `path`, for errors) into this process's part of the model.
  virtual void load_model_state(nn::Module& model, const std::string& state,
                                const std::string& path);

  // Collective where the optimizer state is spread over the processes. Puts it into sections of
  // `checkpoint`, which data rank 0 writes (other processes may leave it empty).
  virtual void save(Checkpoint& checkpoint) = 0;
  // Whether every process holds the whole training state (model and optimizer), so that save()
  // and model_state() need no other process and give the same on each.
  [[nodiscard]] virtual bool holds_whole_state() const { return false; }
  // Restores what save() wrote, on any number of processes where the strategy allows it. Throws
  // FormatError naming the file when the checkpoint holds another strategy's state.
  virtual void load(const Checkpoint& checkpoint) = 0;

 protected:
  // Runs over `group` (nullptr: one process); with `group_of_one`, over a group of one instead of
  // nullptr.
  Strategy(comm::ProcessGroup* group, bool group_of_one);
  // Runs `forward`, which returns the loss, and the loss's backward, adding the time of each to
  // `window`; the loss.
  static double timed_forward_backward(const std::function<autograd::Variable()>& forward,
                                       StepWindow& window);

 private:
  std::unique_ptr<comm::ProcessGroup> own_group_;
  comm::ProcessGroup* group_;
};

// The "optimizer" section of a checkpoint that holds the whole optimizer state as one process
// holds it, whatever split the run that wrote it used: put together from `params` (in the whole
// model's order), and read back for `optimizer` over a model of `count` parameters (FormatError
// naming the file when it holds ZeRO stage 1/2's sharded state, or another optimizer's or
// model's).
void write_whole_optimizer_state(Checkpoint& checkpoint, const optim::Optimizer& optimizer,
                                 const std::vector<optim::ParamState>& params);
[[nodiscard]] optim::SavedOptimizerState read_whole_optimizer_state(
    const Checkpoint& checkpoint, const optim::Optimizer& optimizer, size_t count);

// [parallel] strategy for the processes of `group` (nullptr: one): "auto" is ddp on several, none
// on one.
[[nodiscard]] std::string resolve_strategy(const std::string& strategy,
                                           const comm::ProcessGroup* group);

// The strategy config.parallel.strategy names (resolved), over options.group (nullptr: one
// process). Throws ConfigError when it cannot train on that many processes.
[[nodiscard]] std::unique_ptr<Strategy> make_strategy(const Config& config,
                                                      const TrainerOptions& options);

// One per strategy, each in its own file; make_strategy chooses.
[[nodiscard]] std::unique_ptr<Strategy> make_plain_strategy(const Config& config,
                                                            comm::ProcessGroup* group);
[[nodiscard]] std::unique_ptr<Strategy> make_ddp_strategy(const Config& config,
                                                          comm::ProcessGroup* group);
[[nodiscard]] std::unique_ptr<Strategy> make_zero_strategy(const Config& config,
                                                           comm::ProcessGroup* group);
[[nodiscard]] std::unique_ptr<Strategy> make_pipeline_strategy(const Config& config,
                                                               comm::ProcessGroup* group);
// zero_stage 3 (make_zero_strategy chooses it).
[[nodiscard]] std::unique_ptr<Strategy> make_zero3_strategy(const Config& config,
                                                            comm::ProcessGroup* group);
[[nodiscard]] std::unique_ptr<Strategy> make_tensor_strategy(const Config& config,
                                                             comm::ProcessGroup* group);
// A worker of a parameter-server job (the servers run serve_parameters instead).
[[nodiscard]] std::unique_ptr<Strategy> make_ps_strategy(const Config& config,
                                                         const TrainerOptions& options);

}  // namespace tessera::train
