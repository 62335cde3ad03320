#include "tessera/parallel/tensor_parallel.h"

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

// A child's split parameters under the child's name.
void add_splits(ParameterSplits& to, const std::string& child, const SplitLayer& layer) {
  for (const auto& [name, split] : layer.parameter_splits()) to[child + "." + name] = split;
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
    : group_(group), parts_(parts) {
  const int64_t outputs = whole.weight().size(0);
  if (parts < 1 || outputs % parts != 0) {
    throw ValueError(detail::concat("ColumnParallelLinear: ", outputs, " outputs are not ", parts,
                                    " equal blocks"));
  }
  const ParameterSplit split{0, parts};
  weight_ = register_parameter(
      "weight", slice_for_rank(whole.weight().data(), split, group.rank(), group.size()));
  if (whole.bias().defined()) {
    bias_ = register_parameter(
        "bias", slice_for_rank(whole.bias().data(), split, group.rank(), group.size()));
  }
}

ColumnParallelLinear::ColumnParallelLinear(Variable rows, comm::ProcessGroup& group)
    : group_(group), weight_(std::move(rows)) {}

ParameterSplits ColumnParallelLinear::parameter_splits() const {
  ParameterSplits splits;
  for (const auto& [name, p] : named_parameters()) splits[name] = {0, parts_};
  return splits;
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
  weight_ = register_parameter(
      "weight", slice_for_rank(whole.weight().data(), {1, 1}, group.rank(), group.size()));
  if (whole.bias().defined()) bias_ = register_parameter("bias", whole.bias().data().clone());
}

Variable RowParallelLinear::forward(const Variable& input) {
  Variable y = reduce_from_tensor_parallel(linear_rows(input, weight_, Variable()), group_);
  return bias_.defined() ? ag::add(y, bias_) : y;
}

ParameterSplits RowParallelLinear::parameter_splits() const { return {{"weight", {1, 1}}}; }

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

ParameterSplits TensorParallelTransformerBlock::parameter_splits() const {
  ParameterSplits splits;
  add_splits(splits, "attention.qkv", *qkv_);
  add_splits(splits, "attention.proj", *attention_proj_);
  add_splits(splits, "fc", *fc_);
  add_splits(splits, "proj", *proj_);
  return splits;
}

std::string TensorParallelTransformerBlock::name() const {
  return detail::concat("TensorParallelTransformerBlock(heads=", heads_, " per rank)");
}

}  // namespace tessera::parallel
