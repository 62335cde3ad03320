#pragma once

#include <memory>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::nn {

// Runs its children in order, each on the previous one's output. Children are named "0", "1",
// ... so parameters read "0.weight". The unit pipeline parallelism cuts into stages: a stage is a
// Sequential of some of the whole model's layers under their names in the whole model.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void push_back(std::shared_ptr<Module> layer);
  // Adds a layer under its own name: its index in the whole model, for a pipeline stage.
  void push_back(std::shared_ptr<Module> layer, std::string name);
  // A parameter that a layer here uses but a layer elsewhere owns, registered under the owner's
  // name (such as "0.tokens"): a pipeline stage's copy of a weight tied to another stage's.
  Variable hold_parameter(std::string name, Tensor value) {
    return register_parameter(std::move(name), std::move(value));
  }
  Variable forward(const Variable& input) override;
  std::string name() const override;
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace tessera::nn
