#pragma once

#include <optional>
#include <utility>

#include "tessera/autograd/functions.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

// Normalises over the last dimension (size `features`), then scales and shifts (weight 1, bias 0
// initially), as torch.nn.LayerNorm(features).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t features, double eps = 1e-5, DType dtype = DType::kFloat32);
  Variable forward(const Variable& input) override;
  std::string name() const override;

 private:
  int64_t features_;
  double eps_;
  Variable weight_;
  Variable bias_;
};

// Batch normalisation over channel dimension 1 of [N, C] or [N, C, H, W] (torch.nn.BatchNorm1d /
// BatchNorm2d). Training mode normalises with the batch's statistics (biased variance) and updates
// the running ones (unbiased variance) with `momentum`; evaluation mode uses the running ones.
// The batch is this call's input unless set_batch_stats_reduction() widens it (data parallelism:
// parallel::convert_sync_batchnorm).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t channels, double eps = 1e-5, double momentum = 0.1,
                     DType dtype = DType::kFloat32);
  Variable forward(const Variable& input) override;
  std::string name() const override;

  // Training statistics from then on come through `across` (see autograd::BatchStatsReduction);
  // nullopt returns to this process's batch alone.
  void set_batch_stats_reduction(std::optional<autograd::BatchStatsReduction> across) {
    across_ = std::move(across);
  }

 private:
  int64_t channels_;
  double eps_;
  double momentum_;
  Variable weight_;
  Variable bias_;
  Tensor running_mean_;
  Tensor running_var_;
  std::optional<autograd::BatchStatsReduction> across_;
};

}  // namespace tessera::nn
