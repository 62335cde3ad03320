#pragma once

#include <memory>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::nn {

// Runs its children in order, each on the previous one's output. Children are named "0", "1",
// ... so parameters read "0.weight". The unit pipeline parallelism cuts into stages.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void push_back(std::shared_ptr<Module> layer);
  Variable forward(const Variable& input) override;
  std::string name() const override;
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace tessera::nn
