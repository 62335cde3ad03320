#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/tensor/tensor.h"

namespace tessera::autograd {

class Node;
class Variable;

// Called with a leaf whose gradient for the current backward pass is final.
using GradReadyHook = std::function<void(Variable&)>;

struct VariableImpl {
  Tensor data;
  Tensor grad;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  std::vector<std::pair<int, GradReadyHook>> hooks;
  int next_hook_id = 0;
  std::string name;
};

// A tensor that records the operations applied to it so backward() can compute gradients.
// Copying a Variable shares it (data, grad and graph position); detach() gives a new leaf over
// the same data. Leaves with requires_grad accumulate gradients in grad() across backward calls
// until zero_grad(). Not thread-safe; one graph per thread.
class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor data, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const { return impl_->data; }
  // Replaces the values (same shape expected by any graph using it); used by optimizers and
  // state loading, under NoGradGuard.
  void set_data(Tensor data) { impl_->data = std::move(data); }
  const Tensor& grad() const { return impl_->grad; }
  void set_grad(Tensor grad) { impl_->grad = std::move(grad); }
  void zero_grad() { impl_->grad = Tensor(); }
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool value) { impl_->requires_grad = value; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  const std::string& name() const { return impl_->name; }
  void set_name(std::string name) { impl_->name = std::move(name); }

  const Shape& shape() const { return impl_->data.shape(); }
  int64_t dim() const { return impl_->data.dim(); }
  int64_t size(int64_t axis) const { return impl_->data.size(axis); }
  int64_t numel() const { return impl_->data.numel(); }
  DType dtype() const { return impl_->data.dtype(); }

  // Backpropagates from this scalar (gradient 1) or with the given output gradient.
  void backward() const;
  void backward(const Tensor& grad_output) const;

  // A new leaf sharing this variable's data, outside any graph.
  Variable detach() const;

  // Registers a hook on a leaf that fires once per backward pass, the moment this leaf's gradient
  // is final (all uses in the graph have contributed). Returns an id for remove_hook.
  int add_grad_ready_hook(GradReadyHook hook);
  void remove_hook(int id);

  // The Variable that owns impl (the engine hands leaves to hooks this way).
  static Variable from_impl(std::shared_ptr<VariableImpl> impl);
  VariableImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<VariableImpl>& shared_impl() const { return impl_; }

 private:
  std::shared_ptr<VariableImpl> impl_;
};

}  // namespace tessera::autograd
