#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stage_state.h"
#include "strategy.h"
#include "tessera/parallel/parameter_split.h"
#include "tessera/parallel/vocab_parallel.h"

namespace tessera::train {

// Tensor parallelism inside a strategy ("tensor", and "hybrid" with tp > 1): makes this process's
// part of each layer the model splits over a group (model_builder.h's LayerSplit), remembers how
// every parameter lies over the group, and turns the parts back into the whole: the output, the
// model's state and the optimizer's. Layers are split Megatron-LM's way: token embeddings by
// vocabulary rows, transformer blocks by heads and hidden units, the output head by its outputs,
// whose logits stay split and go into the vocabulary-parallel cross-entropy. Borrows the group.
class TensorSplitter {
 public:
  // Throws ConfigError when the config's loss cannot take split logits.
  TensorSplitter(const Config& config, comm::ProcessGroup& group);

  [[nodiscard]] LayerSplit layer_split();
  comm::ProcessGroup& group() const { return group_; }
  // Whether the model's output is this process's columns of the logits (its last layer is split),
  // on every stage of a pipeline.
  [[nodiscard]] bool split_head() const { return split_head_; }
  // How parameter `name` lies over the group (whole unless a split layer says otherwise).
  [[nodiscard]] parallel::ParameterSplit split_of(const std::string& name) const;

  // The batch's loss from this process's output: the vocabulary-parallel cross-entropy of split
  // logits (collective), or `loss` of a whole output.
  [[nodiscard]] autograd::Variable loss(const autograd::Variable& output, const Tensor& targets,
                                        const LossFunction& whole_loss);
  // The whole output from every process's part (collective when the head is split).
  [[nodiscard]] Tensor whole_output(const Tensor& output);

  // Collective: `model`'s state as one process would save it (Module::save_state's format), every
  // split parameter put together, one at a time.
  [[nodiscard]] std::string whole_state(nn::Module& model) const;
  // Cuts a whole state's entries for this process (stage_state's `part`), naming `path` in errors.
  [[nodiscard]] EntryPart cut(const std::string& path) const;
  // Collective: each of `params`' optimizer states (`states`, in order) with its buffers whole.
  [[nodiscard]] std::vector<optim::ParamState> whole_states(
      const std::vector<std::pair<std::string, autograd::Variable>>& params,
      std::vector<optim::ParamState> states) const;
  // Cuts whole optimizer states for `params` (in order) for this process; a state that does not
  // fit throws FormatError naming `path` before any is changed.
  void cut_states(const std::vector<std::pair<std::string, autograd::Variable>>& params,
                  std::vector<optim::ParamState>& states, const std::string& path) const;

 private:
  std::shared_ptr<nn::Module> split(size_t index, std::shared_ptr<nn::Module> whole);

  const Config& config_;
  comm::ProcessGroup& group_;
  std::shared_ptr<parallel::VocabParallelEmbedding> embedding_;  // the last, for a tied head
  bool split_head_;
  parallel::ParameterSplits splits_;  // by the model's parameter names
};

}  // namespace tessera::train
