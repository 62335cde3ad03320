#include "tensor_split.h"

#include "section_bytes.h"
#include "tessera/core/error.h"
#include "tessera/nn/embedding.h"
#include "tessera/nn/linear.h"
#include "tessera/parallel/tensor_parallel.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::train {

TensorSplitter::TensorSplitter(const Config& config, comm::ProcessGroup& group)
    : config_(config), group_(group) {
  const std::vector<LayerSpec>& layers = config_.model.layers;
  split_head_ = !layers.empty() && layers.back().type == "linear";
  if (!split_head_) return;
  if (config_.train.loss != "next_token" && config_.train.loss != "cross_entropy") {
    throw ConfigError(config_.source, 0, "train.loss",
                      "is \"" + config_.train.loss +
                          "\" but tensor parallelism splits the output layer's logits, which "
                          "only cross_entropy and next_token take");
  }
  if (config_.train.label_smoothing > 0) {
    throw ConfigError(config_.source, 0, "train.label_smoothing",
                      "is not available with tensor parallelism (the logits are split)");
  }
}

LayerSplit TensorSplitter::layer_split() {
  return {
      .ways = group_.size(),
      .split = [this](size_t index,
                      std::shared_ptr<nn::Module> whole) { return split(index, std::move(whole)); },
      .hold =
          [this](const std::string& name, const Tensor& whole) {
            splits_[name] = {0, 1};
            return parallel::slice_for_rank(whole, {0, 1}, group_.rank(), group_.size());
          }};
}

std::shared_ptr<nn::Module> TensorSplitter::split(size_t index, std::shared_ptr<nn::Module> whole) {
  std::shared_ptr<nn::Module> part;
  try {
    if (auto* e = dynamic_cast<nn::TokenEmbedding*>(whole.get())) {
      embedding_ = std::make_shared<parallel::VocabParallelEmbedding>(*e, group_);
      part = embedding_;
    } else if (auto* b = dynamic_cast<nn::TransformerBlock*>(whole.get())) {
      part = std::make_shared<parallel::TensorParallelTransformerBlock>(*b, group_);
    } else if (auto* l = dynamic_cast<nn::Linear*>(whole.get())) {
      part = std::make_shared<parallel::ColumnParallelLinear>(*l, group_);
    } else if (auto* t = dynamic_cast<nn::TiedLinear*>(whole.get())) {
      // The table is this process's embedding's rows, or the rows `hold` cut for another stage's.
      part = std::make_shared<parallel::ColumnParallelLinear>(
          embedding_ ? embedding_->tokens() : t->weight(), group_);
    } else {
      throw InternalError("tensor parallelism cannot split " + whole->name());
    }
  } catch (const ValueError& e) {
    throw ConfigError(
        config_.source, config_.model.layers[index].line,
        detail::concat("model.layers[", index, "]"),
        detail::concat(e.what(), " (tensor parallelism over ", group_.size(), " processes)"));
  }
  for (const auto& [name, s] : dynamic_cast<parallel::SplitLayer&>(*part).parameter_splits()) {
    splits_[detail::concat(index, ".", name)] = s;
  }
  return part;
}

parallel::ParameterSplit TensorSplitter::split_of(const std::string& name) const {
  const auto it = splits_.find(name);
  return it == splits_.end() ? parallel::ParameterSplit{} : it->second;
}

autograd::Variable TensorSplitter::loss(const autograd::Variable& output, const Tensor& targets,
                                        const LossFunction& whole_loss) {
  if (!split_head_) return whole_loss(output, targets);
  const autograd::Variable rows = autograd::reshape(output, {-1, output.shape().back()});
  return parallel::vocab_parallel_cross_entropy(rows, targets, group_);
}

Tensor TensorSplitter::whole_output(const Tensor& output) {
  if (!split_head_) return output;
  return parallel::gather_slices(output, {static_cast<int>(output.dim()) - 1, 1}, group_);
}

std::string TensorSplitter::whole_state(nn::Module& model) const {
  const auto params = model.named_parameters();
  const auto buffers = model.named_buffers();
  return to_bytes([&](BinaryWriter& w) {
    w.write_u64(params.size() + buffers.size());
    for (const auto& [name, p] : params) {
      const Tensor whole = parallel::gather_slices(p.data(), split_of(name), group_);
      w.write_string(name);
      write_tensor(w, whole);
    }
    for (const auto& [name, b] : buffers) {
      w.write_string(name);
      write_tensor(w, b);
    }
  });
}

EntryPart TensorSplitter::cut(const std::string& path) const {
  return [this, path](const std::string& name, const Tensor& whole) {
    try {
      return parallel::slice_for_rank(whole, split_of(name), group_.rank(), group_.size());
    } catch (const ValueError& e) {
      throw FormatError(
          detail::concat(path, ": entry '", name, "' ", shape_str(whole.shape()), ": ", e.what()));
    }
  };
}

std::vector<optim::ParamState> TensorSplitter::whole_states(
    const std::vector<std::pair<std::string, autograd::Variable>>& params,
    std::vector<optim::ParamState> states) const {
  for (size_t i = 0; i < params.size(); ++i) {
    for (Tensor& b : states[i].buffers) {
      b = parallel::gather_slices(b, split_of(params[i].first), group_);
    }
  }
  return states;
}

// Every part is cut and checked before the caller sets any, so a bad checkpoint changes nothing.
void TensorSplitter::cut_states(
    const std::vector<std::pair<std::string, autograd::Variable>>& params,
    std::vector<optim::ParamState>& states, const std::string& path) const {
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, param] = params[i];
    for (Tensor& b : states[i].buffers) {
      try {
        b = parallel::slice_for_rank(b, split_of(name), group_.rank(), group_.size());
      } catch (const ValueError& e) {
        throw FormatError(detail::concat(path, ": optimizer state of '", name, "': ", e.what()));
      }
      if (b.shape() != param.shape()) {
        throw FormatError(detail::concat(path, ": optimizer state of '", name, "' cuts to ",
                                         shape_str(b.shape()), ", the parameter is ",
                                         shape_str(param.shape())));
      }
    }
  }
}

}  // namespace tessera::train
