#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/autograd/variable.h"

namespace tessera::autograd {

// Where one input of a node sends its gradient: another node, or a leaf to accumulate into.
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<VariableImpl> leaf;
  bool valid() const { return node != nullptr || leaf != nullptr; }
};

// Computes input gradients from the output gradient. `needs[i]` says whether input i wants one;
// the result has one tensor per input (undefined where not needed).
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs)>;

// One recorded operation (single output). Its closure captures inputs and saved tensors, never
// the output's own node (that would be a reference cycle).
class Node {
 public:
  Node(std::string name, std::vector<Edge> inputs, BackwardFn backward);
  const std::string& name() const { return name_; }
  const std::vector<Edge>& inputs() const { return inputs_; }
  // Creation order: a later node ran later in forward, so backward visits it first.
  uint64_t sequence() const { return sequence_; }
  std::vector<Tensor> apply(const Tensor& grad_output) const;

 private:
  std::string name_;
  std::vector<Edge> inputs_;
  BackwardFn backward_;
  uint64_t sequence_;
};

// Builds the output Variable of an op: records a Node when grad mode is on and any input requires
// grad, otherwise returns a plain Variable.
Variable make_result(Tensor output, const std::string& name, const std::vector<Variable>& inputs,
                     BackwardFn backward);

}  // namespace tessera::autograd
