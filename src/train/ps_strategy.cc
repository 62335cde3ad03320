#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "optimizer_factory.h"
#include "ps_setup.h"
#include "strategy.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"
#include "tessera/parallel/ps/worker.h"
#include "tessera/train/parameter_server.h"

namespace tessera::train {
namespace {

// Strategy "ps", a worker's side: after backward it pushes the whole gradient to the servers and
// pulls the parameters of the next step, which the servers' consistency mode may hold back. The
// servers hold the optimizer state. Workers report alone (group() is null): no collective joins
// them, so under asp and ssp one may die without stopping the others.
class PsStrategy : public Strategy {
 public:
  PsStrategy(const Config& config, comm::ProcessGroup& world, const std::string& job_token)
      : Strategy(nullptr, /*group_of_one=*/false),
        config_(config),
        rank_(world.rank()),
        workers_(ps_workers(config, world.size())),
        token_(agree_token(world, job_token)),
        servers_(exchange_addresses(world, "")) {}

  // A worker started again after it died: no group, the servers from their address files.
  PsStrategy(const Config& config, int rank, int world_size, const std::string& job_token)
      : Strategy(nullptr, /*group_of_one=*/false),
        config_(config),
        rank_(rank),
        workers_(ps_workers(config, world_size)),
        token_(job_token),
        servers_(server_addresses(config)),
        rejoined_(true) {}

  [[nodiscard]] int data_rank() const override { return rank_; }
  [[nodiscard]] int data_ranks() const override { return workers_; }

  void attach(nn::Sequential& model) override {
    params_ = model.parameters();
    // Only the learning rate of this optimizer is used: the schedule drives it and each push
    // carries it to the servers, which apply their own copy of the update rule.
    lr_source_ = make_optimizer(config_.optimizer, params_);
    flat_.resize(static_cast<size_t>(parameter_count(params_)));
    worker_ = std::make_unique<parallel::ps::Worker>(
        worker_options(config_, rank_, servers_, token_),
        std::vector{model_table(config_, static_cast<int64_t>(flat_.size()))});
    if (rejoined_) clock_ = worker_->steps();
    pull();
  }

  [[nodiscard]] int64_t first_step() const override { return clock_; }

  [[nodiscard]] optim::Optimizer& optimizer() override { return *lr_source_; }
  void zero_grad() override { lr_source_->zero_grad(); }

  void step() override {
    gather_grads(params_, flat_);
    worker_->push_dense(kModelTable, clock_, flat_, static_cast<float>(lr_source_->lr()));
    ++clock_;
    pull();
  }

  [[nodiscard]] int64_t optimizer_state_bytes() override { return 0; }  // on the servers

  void add_metrics(const StepWindow& /*window*/, nlohmann::json& line) const override {
    line["ps_consistency"] = config_.parallel.consistency;
  }

  // Worker 0 has the servers checkpoint their shards as this step's (under bsp exactly the state
  // after it: no round of this step can complete before worker 0 pushes it); the Trainer then
  // writes the model as pulled. A server that cannot write its own is reported, and training
  // goes on (the Trainer's checkpoint of this step will not resume).
  void save(Checkpoint& /*checkpoint*/) override {
    if (rank_ != 0) return;
    try {
      worker_->checkpoint(clock_);
    } catch (const comm::CommError& e) {
      std::fprintf(stderr, "ps worker 0: the servers' checkpoint of step %lld failed: %s\n",
                   static_cast<long long>(clock_), e.what());
    }
  }

  // The servers started from their checkpoint of this step (serve_parameters' resume): go on
  // from its step with their values.
  void load(const Checkpoint& checkpoint) override {
    clock_ = checkpoint.step;
    pull();
  }

 private:
  void pull() {
    worker_->pull_dense(kModelTable, clock_, flat_);
    assign_values(params_, flat_);
  }

  Config config_;
  int rank_;
  int workers_;
  std::string token_;
  std::vector<std::string> servers_;
  std::vector<autograd::Variable> params_;
  std::unique_ptr<optim::Optimizer> lr_source_;
  std::vector<float> flat_;
  std::unique_ptr<parallel::ps::Worker> worker_;
  int64_t clock_ = 0;
  bool rejoined_ = false;
};

}  // namespace

std::unique_ptr<Strategy> make_ps_strategy(const Config& config, const TrainerOptions& options) {
  (void)model_table(config, 1);  // the optimizer's settings, checked before anything starts
  if (options.rejoin_rank >= 0) {
    if (options.job_token.empty()) {
      throw ConfigError(config.source, 0, "parallel.strategy",
                        "a restarted parameter-server worker needs the job token "
                        "(TESSERA_JOB_TOKEN)");
    }
    return std::make_unique<PsStrategy>(config, options.rejoin_rank, options.rejoin_world_size,
                                        options.job_token);
  }
  comm::ProcessGroup* group = options.group;
  if (group == nullptr) {
    throw ConfigError(config.source, 0, "parallel.strategy",
                      "is \"ps\", which needs servers and workers: start the job with --nproc "
                      "(servers + workers), mpirun or srun");
  }
  if (is_parameter_server(config, group->rank(), group->size())) {
    throw ConfigError(config.source, 0, "parallel.servers",
                      detail::concat("rank ", group->rank(),
                                     " is a parameter server, not a worker: run "
                                     "serve_parameters() there (tessera train does)"));
  }
  return std::make_unique<PsStrategy>(config, *group, options.job_token);
}

}  // namespace tessera::train
