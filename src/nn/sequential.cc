#include "tessera/nn/sequential.h"

namespace tessera::nn {

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) {
  for (auto& layer : layers) push_back(std::move(layer));
}

void Sequential::push_back(std::shared_ptr<Module> layer) {
  push_back(std::move(layer), std::to_string(layers_.size()));
}

void Sequential::push_back(std::shared_ptr<Module> layer, std::string name) {
  if (!layer) throw ValueError("Sequential: null layer");
  register_module(std::move(name), layer);
  layers_.push_back(std::move(layer));
}

Variable Sequential::forward(const Variable& input) {
  Variable x = input;
  for (auto& layer : layers_) x = layer->forward(x);
  return x;
}

std::string Sequential::name() const {
  std::string out = "Sequential(";
  for (size_t i = 0; i < layers_.size(); ++i) out += (i ? ", " : "") + layers_[i]->name();
  return out + ")";
}

}  // namespace tessera::nn
