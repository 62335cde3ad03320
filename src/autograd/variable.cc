#include "tessera/autograd/variable.h"

#include <algorithm>

#include "tessera/autograd/engine.h"
#include "tessera/autograd/node.h"

namespace tessera::autograd {

Variable::Variable(Tensor data, bool requires_grad) : impl_(std::make_shared<VariableImpl>()) {
  if (requires_grad && !is_floating(data.dtype())) {
    throw DTypeError(detail::concat("Variable: only floating tensors can require grad, got ",
                                    dtype_name(data.dtype())));
  }
  impl_->data = std::move(data);
  impl_->requires_grad = requires_grad;
}

Variable Variable::from_impl(std::shared_ptr<VariableImpl> impl) {
  Variable v;
  v.impl_ = std::move(impl);
  return v;
}

void Variable::backward() const {
  if (numel() != 1) {
    throw ShapeError("backward: implicit gradient needs a one-element output, got " +
                     shape_str(shape()));
  }
  backward(Tensor::ones(shape(), dtype()));
}

void Variable::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

Variable Variable::detach() const { return Variable(impl_->data, false); }

int Variable::add_grad_ready_hook(GradReadyHook hook) {
  if (!is_leaf()) throw ValueError("add_grad_ready_hook: only leaves carry gradient-ready hooks");
  int id = impl_->next_hook_id++;
  impl_->hooks.emplace_back(id, std::move(hook));
  return id;
}

void Variable::remove_hook(int id) {
  auto& hooks = impl_->hooks;
  hooks.erase(std::remove_if(hooks.begin(), hooks.end(), [id](auto& h) { return h.first == id; }),
              hooks.end());
}

}  // namespace tessera::autograd
