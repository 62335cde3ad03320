#pragma once

#include <memory>

#include "tessera/core/random.h"
#include "tessera/nn/attention.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/module.h"
#include "tessera/nn/normalization.h"

namespace tessera::nn {

// GPT-2's block over [B, T, dim], normalisation first: x + attention(LayerNorm(x)), then
// x + mlp(LayerNorm(x)) with mlp = Linear(dim, hidden), GELU, Linear(hidden, dim).
class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t dim, int64_t heads, int64_t hidden, bool causal,
                   Generator& gen = default_generator(), DType dtype = DType::kFloat32);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  // Its parts, for a model that splits it (parallel/tensor_parallel.h).
  const std::shared_ptr<LayerNorm>& ln1() const { return ln1_; }
  const std::shared_ptr<SelfAttention>& attention() const { return attention_; }
  const std::shared_ptr<LayerNorm>& ln2() const { return ln2_; }
  const Linear& fc() const { return *fc_; }
  const Linear& proj() const { return *proj_; }

 private:
  int64_t dim_;
  int64_t hidden_;
  std::shared_ptr<LayerNorm> ln1_;
  std::shared_ptr<SelfAttention> attention_;
  std::shared_ptr<LayerNorm> ln2_;
  std::shared_ptr<Linear> fc_;
  std::shared_ptr<Linear> proj_;
};

}  // namespace tessera::nn
