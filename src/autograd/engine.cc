#include "tessera/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "tessera/autograd/grad_mode.h"
#include "tessera/autograd/node.h"
#include "tessera/tensor/elementwise.h"

namespace tessera::autograd {
namespace {

void check_grad_shape(const Tensor& grad, const Tensor& data, const std::string& where) {
  if (grad.shape() != data.shape() || grad.dtype() != data.dtype()) {
    throw InternalError(detail::concat("backward of ", where, ": gradient ",
                                       shape_str(grad.shape()), " ", dtype_name(grad.dtype()),
                                       " does not match ", shape_str(data.shape()), " ",
                                       dtype_name(data.dtype())));
  }
}

// Stores a gradient the leaf can own: a tensor nobody else holds is kept, anything shared (the
// same gradient handed to two inputs, a saved tensor) is copied so later in-place updates of one
// gradient never change another.
void accumulate_leaf(VariableImpl& leaf, Tensor grad) {
  if (!leaf.grad.defined()) {
    bool exclusive = grad.storage().use_count() == 1 && grad.is_contiguous() &&
                     grad.offset() == 0 && grad.nbytes() == grad.storage()->nbytes();
    leaf.grad = exclusive ? std::move(grad) : grad.clone();
  } else {
    leaf.grad = add(leaf.grad, grad);
  }
}

void fire_hooks(const std::shared_ptr<VariableImpl>& leaf) {
  if (leaf->hooks.empty()) return;
  Variable v = Variable::from_impl(leaf);
  // Copy: a hook may remove itself.
  auto hooks = leaf->hooks;
  for (auto& [id, hook] : hooks) hook(v);
}

struct LaterFirst {
  bool operator()(const Node* a, const Node* b) const { return a->sequence() < b->sequence(); }
};

}  // namespace

void run_backward(const Variable& root, const Tensor& grad_output) {
  if (!root.defined() || !root.requires_grad()) {
    throw ValueError(
        "backward: the output does not require grad (no input had requires_grad, or "
        "it was computed under NoGradGuard)");
  }
  // The caller's gradient is a user's input (ShapeError/DTypeError); a node's is an invariant.
  if (!grad_output.defined() || grad_output.shape() != root.shape()) {
    throw ShapeError(detail::concat(
        "backward: gradient ", grad_output.defined() ? shape_str(grad_output.shape()) : "undefined",
        " does not match the output ", shape_str(root.shape())));
  }
  if (grad_output.dtype() != root.dtype()) {
    throw DTypeError(detail::concat("backward: gradient ", dtype_name(grad_output.dtype()),
                                    " does not match the output ", dtype_name(root.dtype())));
  }
  NoGradGuard no_grad;  // backward closures must not record graphs of their own
  if (root.is_leaf()) {
    accumulate_leaf(*root.impl(), grad_output.clone());
    fire_hooks(root.shared_impl());
    return;
  }

  // Count, for every node and leaf, how many edges of this graph point to it.
  std::unordered_map<const Node*, int> deps;
  std::unordered_map<const VariableImpl*, int> leaf_uses;
  std::vector<const Node*> stack{root.grad_fn().get()};
  std::unordered_set<const Node*> seen{root.grad_fn().get()};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->inputs()) {
      if (e.node) {
        ++deps[e.node.get()];
        if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
      } else if (e.leaf) {
        ++leaf_uses[e.leaf.get()];
      }
    }
  }

  std::unordered_map<const Node*, Tensor> pending;
  std::unordered_set<const VariableImpl*> received;
  std::priority_queue<const Node*, std::vector<const Node*>, LaterFirst> ready;
  pending[root.grad_fn().get()] = grad_output;
  ready.push(root.grad_fn().get());
  while (!ready.empty()) {
    const Node* n = ready.top();
    ready.pop();
    Tensor grad = std::move(pending[n]);
    pending.erase(n);
    std::vector<Tensor> grads;
    if (grad.defined()) {
      grads = n->apply(grad);
    } else {
      grads.resize(n->inputs().size());  // no gradient reached this node
    }
    grad = Tensor();
    for (size_t i = 0; i < n->inputs().size(); ++i) {
      const Edge& e = n->inputs()[i];
      Tensor g = std::move(grads[i]);
      if (e.node) {
        if (g.defined()) {
          Tensor& slot = pending[e.node.get()];
          slot = slot.defined() ? add(slot, g) : std::move(g);
        }
        if (--deps[e.node.get()] == 0) ready.push(e.node.get());
      } else if (e.leaf) {
        if (g.defined()) {
          check_grad_shape(g, e.leaf->data, n->name());
          accumulate_leaf(*e.leaf, std::move(g));
          received.insert(e.leaf.get());
        }
        if (--leaf_uses[e.leaf.get()] == 0 && received.count(e.leaf.get())) fire_hooks(e.leaf);
      }
    }
  }
}

}  // namespace tessera::autograd
