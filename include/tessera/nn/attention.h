#pragma once

#include <memory>

#include "tessera/core/random.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

// softmax(q k^T / sqrt(d)) v for q, k, v of [N, T, d] (N: batch times heads); with `causal`,
// position t attends to positions 0 .. t only (GPT's mask). Returns [N, T, d].
[[nodiscard]] Variable scaled_dot_product_attention(const Variable& q, const Variable& k,
                                                    const Variable& v, bool causal);

// [B, T, heads * d] -> [B * heads, T, d], each head's columns its own batch entry; merge_heads
// undoes it for a batch of `batch`.
[[nodiscard]] Variable split_heads(const Variable& x, int64_t heads);
[[nodiscard]] Variable merge_heads(const Variable& x, int64_t batch);

// Multi-head self-attention over [B, T, dim] as GPT-2 has it (torch.nn.MultiheadAttention with
// batch_first and no attention weights returned): one projection to queries, keys and values,
// `heads` heads of dim / heads each, and an output projection. Both projections are Linear
// layers initialised as PyTorch's.
class SelfAttention : public Module {
 public:
  SelfAttention(int64_t dim, int64_t heads, bool causal, Generator& gen = default_generator(),
                DType dtype = DType::kFloat32);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  // Its parts, for a model that splits it (parallel/tensor_parallel.h).
  int64_t heads() const { return heads_; }
  bool causal() const { return causal_; }
  const Linear& qkv() const { return *qkv_; }
  const Linear& proj() const { return *proj_; }

 private:
  int64_t dim_;
  int64_t heads_;
  bool causal_;
  std::shared_ptr<Linear> qkv_;
  std::shared_ptr<Linear> proj_;
};

}  // namespace tessera::nn
