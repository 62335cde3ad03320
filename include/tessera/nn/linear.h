#pragma once

#include "tessera/core/random.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

struct LinearOptions {
  bool bias = true;
  DType dtype = DType::kFloat32;
};

// y = x W^T + b with W [out, in], for x of [N, in] or [..., in] (each position alike).
// Initialised as PyTorch does: W and b uniform in +-1/sqrt(in) (Kaiming uniform with a = sqrt(5)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen = default_generator(),
         const LinearOptions& options = {});
  Variable forward(const Variable& input) override;
  std::string name() const override;
  const Variable& weight() const { return weight_; }
  const Variable& bias() const { return bias_; }

 private:
  int64_t in_features_;
  int64_t out_features_;
  Variable weight_;
  Variable bias_;
};

// y = x W^T with W another module's parameter [out, in]: an output head tied to the token
// embedding, as GPT-2's. W is not this module's parameter, so optimizers, gradient reduction and
// checkpoints see it once, where it belongs; its gradient gathers both uses.
class TiedLinear : public Module {
 public:
  explicit TiedLinear(Variable weight);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  [[nodiscard]] const Variable& weight() const { return weight_; }

 private:
  Variable weight_;
};

}  // namespace tessera::nn
