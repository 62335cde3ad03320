#include "tessera/parallel/tensor_parallel.h"

#include <cstring>

#include "tessera/autograd/functions.h"
#include "tessera/autograd/node.h"
#include "tessera/core/error.h"
#include "tessera/nn/attention.h"
#include "tessera/parallel/dtype_map.h"

namespace tessera::parallel {
namespace {

namespace ag = autograd;

// `t` summed over the group, in a new tensor.
Tensor summed(const Tensor& t, comm::ProcessGroup& group) {
  Tensor out = t.contiguous().clone();
  group
      .allreduce(out.raw_data(), static_cast<size_t>(out.numel()), to_comm(out.dtype()),
                 comm::ReduceOp::kSum)
      ->wait();
  return out;
}

// Rank r's slice of `size` along a dimension split `ways` ways.
int64_t slice_of(int64_t size, int ways, const char* what) {
  if (size % ways != 0) {
    throw ValueError(detail::concat("tensor parallel: ", what, " ", size, " does not divide among ",
                                    ways, " ranks"));
  }
  return size / ways;
}

// The tensors, each [n_i, ...] with the same trailing shape, one after another along dim 0.
Tensor stack_rows(const std::vector<Tensor>& parts) {
  Shape shape = parts.front().shape();
  shape[0] = 0;
  for (const Tensor& p : parts) shape[0] += p.size(0);
  Tensor out = Tensor::empty(shape, parts.front().dtype());
  auto* at = static_cast<std::byte*>(out.raw_data());
  for (const Tensor& p : parts) {
    const Tensor c = p.contiguous();
    std::memcpy(at, c.raw_data(), c.nbytes());
    at += c.nbytes();
  }
  return out;
}

// y = x W^T (+ b) on [..., in].
Variable linear_rows(const Variable& x, const Variable& weight, const Variable& bias) {
  if (x.dim() == 2) return ag::linear(x, weight, bias);
  Shape out = x.shape();
  out.back() = weight.size(0);
  return ag::reshape(ag::linear(ag::reshape(x, {-1, x.shape().back()}), weight, bias), out);
}

}  // namespace

Variable copy_to_tensor_parallel(const Variable& x, comm::ProcessGroup& group) {
  return ag::make_result(x.data(), "copy_to_tensor_parallel", {x},
                         [&group](const Tensor& grad, const std::vector<bool>&) {
                           return std::vector<Tensor>{summed(grad, group)};
                         });
}

Variable reduce_from_tensor_parallel(const Variable& x, comm::ProcessGroup& group) {
  return ag::make_result(
      summed(x.data(), group), "reduce_from_tensor_parallel", {x},
      [](const Tensor& grad, const std::vector<bool>&) { return std::vector<Tensor>{grad}; });
}

ColumnParallelLinear::ColumnParallelLinear(const nn::Linear& whole, comm::ProcessGroup& group,
                                           int64_t parts)
    : group_(group) {
  const int ways = group.size();
  const int64_t block = whole.weight().size(0) / parts;
  if (parts < 1 || block * parts != whole.weight().size(0)) {
    throw ValueError(detail::concat("ColumnParallelLinear: ", whole.weight().size(0),
                                    " outputs are not ", parts, " equal blocks"));
  }
  const int64_t mine = slice_of(block, ways, "a block of outputs");
  std::vector<Tensor> weights, biases;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t begin = p * block + group.rank() * mine;
    weights.push_back(whole.weight().data().slice(0, begin, begin + mine));
    if (whole.bias().defined()) biases.push_back(whole.bias().data().slice(0, begin, begin + mine));
  }
  weight_ = register_parameter("weight", stack_rows(weights));
  if (!biases.empty()) bias_ = register_parameter("bias", stack_rows(biases));
}

Variable ColumnParallelLinear::forward(const Variable& input) {
  return linear_rows(copy_to_tensor_parallel(input, group_), weight_, bias_);
}

std::string ColumnParallelLinear::name() const {
  return detail::concat("ColumnParallelLinear(", weight_.size(1), ", ", weight_.size(0), " of ",
                        weight_.size(0) * group_.size(), ")");
}

RowParallelLinear::RowParallelLinear(const nn::Linear& whole, comm::ProcessGroup& group)
    : group_(group) {
  const int64_t mine = slice_of(whole.weight().size(1), group.size(), "the inputs");
  const int64_t begin = group.rank() * mine;
  weight_ = register_parameter("weight",
                               whole.weight().data().slice(1, begin, begin + mine).contiguous());
  if (whole.bias().defined()) bias_ = register_parameter("bias", whole.bias().data().clone());
}

Variable RowParallelLinear::forward(const Variable& input) {
  Variable y = reduce_from_tensor_parallel(linear_rows(input, weight_, Variable()), group_);
  return bias_.defined() ? ag::add(y, bias_) : y;
}

std::string RowParallelLinear::name() const {
  return detail::concat("RowParallelLinear(", weight_.size(1), " of ",
                        weight_.size(1) * group_.size(), ", ", weight_.size(0), ")");
}

TensorParallelTransformerBlock::TensorParallelTransformerBlock(const nn::TransformerBlock& whole,
                                                               comm::ProcessGroup& group)
    : heads_(slice_of(whole.attention()->heads(), group.size(), "heads")),
      causal_(whole.attention()->causal()) {
  ln1_ = register_module("ln1", whole.ln1());
  qkv_ = register_module(
      "attention.qkv", std::make_shared<ColumnParallelLinear>(whole.attention()->qkv(), group, 3));
  attention_proj_ = register_module(
      "attention.proj", std::make_shared<RowParallelLinear>(whole.attention()->proj(), group));
  ln2_ = register_module("ln2", whole.ln2());
  fc_ = register_module("fc", std::make_shared<ColumnParallelLinear>(whole.fc(), group));
  proj_ = register_module("proj", std::make_shared<RowParallelLinear>(whole.proj(), group));
}

Variable TensorParallelTransformerBlock::forward(const Variable& input) {
  const Variable qkv = qkv_->forward(ln1_->forward(input));  // [B, T, 3 * local width]
  const int64_t width = qkv.size(2) / 3;
  auto part = [&](int64_t i) {
    return nn::split_heads(ag::slice(qkv, 2, i * width, (i + 1) * width), heads_);
  };
  const Variable heads = nn::scaled_dot_product_attention(part(0), part(1), part(2), causal_);
  const Variable x =
      ag::add(input, attention_proj_->forward(nn::merge_heads(heads, input.size(0))));
  return ag::add(x, proj_->forward(ag::gelu(fc_->forward(ln2_->forward(x)))));
}

std::string TensorParallelTransformerBlock::name() const {
  return detail::concat("TensorParallelTransformerBlock(heads=", heads_, " per rank)");
}

}  // namespace tessera::parallel
