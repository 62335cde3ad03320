#include "tessera/autograd/node.h"

#include <atomic>

#include "tessera/autograd/grad_mode.h"

namespace tessera::autograd {
namespace {
std::atomic<uint64_t> next_sequence{0};
}

Node::Node(std::string name, std::vector<Edge> inputs, BackwardFn backward)
    : name_(std::move(name)),
      inputs_(std::move(inputs)),
      backward_(std::move(backward)),
      sequence_(next_sequence++) {}

std::vector<Tensor> Node::apply(const Tensor& grad_output) const {
  std::vector<bool> needs(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) needs[i] = inputs_[i].valid();
  std::vector<Tensor> grads = backward_(grad_output, needs);
  TESSERA_CHECK_EQ(grads.size(), inputs_.size(), "in backward of ", name_);
  return grads;
}

Variable make_result(Tensor output, const std::string& name, const std::vector<Variable>& inputs,
                     BackwardFn backward) {
  Variable result(std::move(output), false);
  if (!grad_enabled()) return result;
  bool any = false;
  std::vector<Edge> edges(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Variable& in = inputs[i];
    if (!in.requires_grad()) continue;
    any = true;
    if (in.is_leaf()) {
      edges[i].leaf = in.shared_impl();
    } else {
      edges[i].node = in.grad_fn();
    }
  }
  if (!any) return result;
  result.impl()->requires_grad = true;
  result.impl()->grad_fn = std::make_shared<Node>(name, std::move(edges), std::move(backward));
  return result;
}

}  // namespace tessera::autograd
