#include <memory>
#include <string>
#include <vector>

#include "optimizer_factory.h"
#include "strategy.h"
#include "tessera/parallel/model_sync.h"
#include "tessera/parallel/zero_optimizer.h"

namespace tessera::train {
namespace {

// Strategy "zero": ZeroOptimizer (stage 1 or 2), each process holding the optimizer state of its
// shard of the parameters. A checkpoint holds every process's shard ("zero_shard_<rank>") and a
// "zero_manifest", so it resumes on any number of processes.
class ZeroStrategy final : public Strategy {
 public:
  ZeroStrategy(const Config& config, comm::ProcessGroup* group)
      : Strategy(group, /*group_of_one=*/true),
        optimizer_config_(config.optimizer),
        parallel_(config.parallel) {}

  void attach(nn::Sequential& model) override {
    const OptimizerConfig& o = optimizer_config_;
    zero_ = std::make_unique<parallel::ZeroOptimizer>(
        model, *group(),
        [&o](std::vector<autograd::Variable> params) {
          return make_optimizer(o, std::move(params));
        },
        parallel::ZeroOptions{
            .stage = static_cast<int>(parallel_.zero_stage),
            .max_grad_norm = o.clip_grad_norm,
            .bucket_bytes = static_cast<size_t>(parallel_.bucket_mb * (1 << 20))});
  }

  optim::Optimizer& optimizer() override { return zero_->inner(); }
  void zero_grad() override { zero_->zero_grad(); }
  void step() override { zero_->step(); }  // averages, clips and allgathers itself
  void save(Checkpoint& checkpoint) override;
  void load(const Checkpoint& checkpoint) override;

 private:
  OptimizerConfig optimizer_config_;
  ParallelConfig parallel_;
  std::unique_ptr<parallel::ZeroOptimizer> zero_;
};

void ZeroStrategy::save(Checkpoint& checkpoint) {
  std::vector<std::string> shards = parallel::allgather_bytes(*group(), zero_->save_shard());
  if (data_rank() != 0) return;
  checkpoint.sections["zero_manifest"] = nlohmann::json{
      {"world_size", shards.size()},
      {"stage", parallel_.zero_stage},
      {"parameters", zero_->total_size()}}.dump();
  for (size_t r = 0; r < shards.size(); ++r) {
    checkpoint.sections["zero_shard_" + std::to_string(r)] = std::move(shards[r]);
  }
}

void ZeroStrategy::load(const Checkpoint& checkpoint) {
  nlohmann::json manifest = nlohmann::json::parse(checkpoint.section("zero_manifest"));
  std::vector<std::string> shards;
  for (int r = 0; r < manifest.at("world_size").get<int>(); ++r) {
    shards.push_back(checkpoint.section("zero_shard_" + std::to_string(r)));
  }
  zero_->load_shards(shards);
}

}  // namespace

std::unique_ptr<Strategy> make_zero_strategy(const Config& config, comm::ProcessGroup* group) {
  if (config.parallel.zero_stage == 3) return make_zero3_strategy(config, group);
  return std::make_unique<ZeroStrategy>(config, group);
}

}  // namespace tessera::train
