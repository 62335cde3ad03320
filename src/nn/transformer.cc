#include "tessera/nn/transformer.h"

#include "tessera/autograd/functions.h"
#include "tessera/core/error.h"

namespace tessera::nn {

namespace ag = autograd;

TransformerBlock::TransformerBlock(int64_t dim, int64_t heads, int64_t hidden, bool causal,
                                   Generator& gen, DType dtype)
    : dim_(dim), hidden_(hidden) {
  if (hidden < 1) throw ValueError(detail::concat("TransformerBlock: hidden ", hidden, " < 1"));
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(dim, 1e-5, dtype));
  attention_ =
      register_module("attention", std::make_shared<SelfAttention>(dim, heads, causal, gen, dtype));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(dim, 1e-5, dtype));
  fc_ = register_module("fc",
                        std::make_shared<Linear>(dim, hidden, gen, LinearOptions{.dtype = dtype}));
  proj_ = register_module(
      "proj", std::make_shared<Linear>(hidden, dim, gen, LinearOptions{.dtype = dtype}));
}

Variable TransformerBlock::forward(const Variable& input) {
  if (input.dim() != 3 || input.size(2) != dim_) {
    throw ShapeError(detail::concat("TransformerBlock: input ", shape_str(input.shape()),
                                    ", expected [batch, tokens, ", dim_, "]"));
  }
  const Variable x = ag::add(input, attention_->forward(ln1_->forward(input)));
  return ag::add(x, proj_->forward(ag::gelu(fc_->forward(ln2_->forward(x)))));
}

std::string TransformerBlock::name() const {
  return detail::concat("TransformerBlock(", dim_, ", hidden=", hidden_, ")");
}

}  // namespace tessera::nn
