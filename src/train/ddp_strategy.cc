#include <memory>

#include "plain_strategy.h"
#include "tessera/parallel/distributed_data_parallel.h"

namespace tessera::train {
namespace {

parallel::GradCompression compression_of(const ParallelConfig& par) {
  if (par.compression == "bf16") return parallel::GradCompression::kBFloat16;
  if (par.compression == "fp16") return parallel::GradCompression::kFloat16;
  return parallel::GradCompression::kNone;
}

// Strategy "ddp": every process holds the model and its optimizer; the gradients are averaged over
// the group (bucket by bucket while backward runs) before each process takes the same step.
class DdpStrategy final : public PlainStrategy {
 public:
  DdpStrategy(const Config& config, comm::ProcessGroup* group)
      : PlainStrategy(config.optimizer, group, /*group_of_one=*/true), parallel_(config.parallel) {}

  void attach(nn::Sequential& model) override {
    ddp_ = std::make_unique<parallel::DistributedDataParallel>(
        model, *group(),
        parallel::DdpOptions{.bucket_bytes = static_cast<size_t>(parallel_.bucket_mb * (1 << 20)),
                             .find_unused_parameters = parallel_.find_unused_parameters,
                             .compression = compression_of(parallel_)});
    PlainStrategy::attach(model);
  }

  void finish_backward(StepWindow& window) override {
    ddp_->synchronize();
    window.bytes += static_cast<double>(ddp_->stats().bytes_sent);
    window.hidden += ddp_->stats().hidden_fraction;
  }

  void add_metrics(const StepWindow& window, nlohmann::json& line) const override {
    line["bytes_communicated_per_step"] = window.bytes / window.steps;
    line["comm_hidden_fraction"] = window.hidden / window.steps;
  }

 private:
  ParallelConfig parallel_;
  std::unique_ptr<parallel::DistributedDataParallel> ddp_;
};

}  // namespace

std::unique_ptr<Strategy> make_ddp_strategy(const Config& config, comm::ProcessGroup* group) {
  return std::make_unique<DdpStrategy>(config, group);
}

}  // namespace tessera::train
