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

}  // namespace tessera::nn
