#pragma once

#include "tessera/core/random.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

// A table of `rows` vectors of size `dim` (initialised N(0, 1) as PyTorch); forward takes a
// Variable holding int32/int64 indices of any shape and returns [..., dim].
class Embedding : public Module {
 public:
  Embedding(int64_t rows, int64_t dim, Generator& gen = default_generator(),
            DType dtype = DType::kFloat32);
  Variable forward(const Variable& indices) override;
  std::string name() const override;
  const Variable& weight() const { return weight_; }

 private:
  int64_t rows_;
  int64_t dim_;
  Variable weight_;
};

// GPT-2's input: [B, T] token ids (in any dtype that holds them exactly; float32 samples do up to
// 2^24) -> token_rows[id] + position_rows[t], [B, T, dim], for T up to `positions`. Both tables
// start N(0, 0.02^2) as GPT-2's.
class TokenEmbedding : public Module {
 public:
  TokenEmbedding(int64_t vocab, int64_t dim, int64_t positions,
                 Generator& gen = default_generator(), DType dtype = DType::kFloat32);
  Variable forward(const Variable& tokens) override;
  std::string name() const override;
  // The token table [vocab, dim], for an output head tied to it (TiedLinear).
  [[nodiscard]] const Variable& tokens() const { return tokens_; }
  // The position table [positions, dim].
  [[nodiscard]] const Variable& positions() const { return positions_table_; }

 private:
  int64_t vocab_;
  int64_t dim_;
  int64_t positions_;
  Variable tokens_;
  Variable positions_table_;
};

}  // namespace tessera::nn
