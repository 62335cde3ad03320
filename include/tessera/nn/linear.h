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

}  // namespace tessera::nn
