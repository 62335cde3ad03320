#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/core/serialize.h"

namespace tessera::nn {

using autograd::Variable;

// Base of every layer: owns named parameters (leaf Variables with requires_grad), named buffers
// (tensors updated in place, such as BatchNorm's running statistics) and child modules, each in
// registration order, so named_parameters() is stable across processes (data parallelism relies
// on it). Not thread-safe; a module is used by one thread at a time.
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Variable forward(const Variable& input) = 0;
  Variable operator()(const Variable& input) { return forward(input); }
  // Short description, e.g. "Linear(784, 512)".
  virtual std::string name() const = 0;

  // Parameters of this module and its children, depth first; children's names are prefixed with
  // the child's name and a dot ("0.weight").
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  std::vector<Variable> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  int64_t parameter_count() const;

  // Calls fn on this module, then on each child's modules, depth first in registration order.
  void apply(const std::function<void(Module&)>& fn);

  // Train mode (the default) vs evaluation mode; applies to children too.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

  // Parameters and buffers by name. load_state copies values in place (so optimizers and views
  // keep pointing at them); a missing, unexpected or differently shaped entry throws an Error
  // naming it, before anything is changed.
  void save_state(BinaryWriter& out) const;
  void load_state(BinaryReader& in);

 protected:
  Variable register_parameter(std::string name, Tensor value);
  void register_buffer(std::string name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 private:
  void collect_parameters(const std::string& prefix,
                          std::vector<std::pair<std::string, Variable>>& out) const;
  void collect_buffers(const std::string& prefix,
                       std::vector<std::pair<std::string, Tensor>>& out) const;

  std::vector<std::pair<std::string, Variable>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tessera::nn
