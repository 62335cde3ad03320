#pragma once

#include "tessera/comm/process_group.h"
#include "tessera/nn/embedding.h"
#include "tessera/parallel/parameter_split.h"

namespace tessera::parallel {

using autograd::Variable;

// The token table split by rows over a group (Megatron's vocabulary-parallel embedding): rank r
// holds rows [r V/T, (r+1) V/T) of the whole nn::TokenEmbedding it is made from, looks up the
// tokens in its range (zero rows for the others) and the rows are summed over the group; the
// position table stays whole on every rank. Its output, and every gradient, equal the whole
// embedding's. Throws ValueError when the group's size does not divide the vocabulary.
class VocabParallelEmbedding : public nn::Module, public SplitLayer {
 public:
  VocabParallelEmbedding(const nn::TokenEmbedding& whole, comm::ProcessGroup& group);
  Variable forward(const Variable& tokens) override;
  std::string name() const override;
  ParameterSplits parameter_splits() const override { return {{"tokens", {0, 1}}}; }
  // This rank's rows of the token table (a tied head's weight).
  [[nodiscard]] const Variable& tokens() const { return tokens_; }

 private:
  comm::ProcessGroup& group_;
  int64_t first_;  // this rank's first token id
  Variable tokens_, positions_;
};

// The mean softmax cross-entropy of logits whose columns (the vocabulary) are split over the
// group: rank r passes its [N, V/T] slice (columns [r V/T, (r+1) V/T), a column-parallel head's
// output) and every rank the same labels [N]. Three allreduces of N values forward (the rows'
// maxima, their sums of exponentials, the labels' logits), none backward; the whole [N, V] logits
// never exist on one rank. Equals autograd::cross_entropy of the whole logits, loss and gradient.
[[nodiscard]] Variable vocab_parallel_cross_entropy(const Variable& logits, const Tensor& labels,
                                                    comm::ProcessGroup& group);

}  // namespace tessera::parallel
