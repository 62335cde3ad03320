#include "tessera/nn/module.h"

#include <map>

#include "tessera/autograd/grad_mode.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::nn {

void Module::collect_parameters(const std::string& prefix,
                                std::vector<std::pair<std::string, Variable>>& out) const {
  for (const auto& [name, p] : parameters_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect_parameters(prefix + name + ".", out);
}

void Module::collect_buffers(const std::string& prefix,
                             std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, b] : buffers_) out.emplace_back(prefix + name, b);
  for (const auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  collect_parameters("", out);
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", out);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [name, child] : children_) child->apply(fn);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

Variable Module::register_parameter(std::string name, Tensor value) {
  Variable v(std::move(value), true);
  v.set_name(name);
  parameters_.emplace_back(std::move(name), v);
  return v;
}

void Module::register_buffer(std::string name, Tensor value) {
  buffers_.emplace_back(std::move(name), std::move(value));
}

void Module::save_state(BinaryWriter& out) const {
  auto params = named_parameters();
  auto buffers = named_buffers();
  out.write_u64(params.size() + buffers.size());
  for (const auto& [name, p] : params) {
    out.write_string(name);
    write_tensor(out, p.data());
  }
  for (const auto& [name, b] : buffers) {
    out.write_string(name);
    write_tensor(out, b);
  }
}

void Module::load_state(BinaryReader& in) {
  uint64_t count = in.read_u64();
  std::map<std::string, Tensor> entries;
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = in.read_string();
    entries[name] = read_tensor(in);
  }
  std::vector<std::pair<std::string, Tensor>> targets;
  for (auto& [name, p] : named_parameters()) targets.emplace_back(name, p.data());
  for (auto& [name, b] : named_buffers()) targets.emplace_back(name, b);
  // Check everything first, so a bad state changes nothing.
  for (const auto& [name, target] : targets) {
    auto it = entries.find(name);
    if (it == entries.end()) {
      throw FormatError(
          detail::concat(in.source(), ": missing entry '", name, "' for ", this->name()));
    }
    if (it->second.shape() != target.shape() || it->second.dtype() != target.dtype()) {
      throw ShapeError(detail::concat(in.source(), ": entry '", name, "' is ",
                                      dtype_name(it->second.dtype()), " ",
                                      shape_str(it->second.shape()), ", the model has ",
                                      dtype_name(target.dtype()), " ", shape_str(target.shape())));
    }
  }
  if (entries.size() != targets.size()) {
    for (const auto& [name, t] : entries) {
      bool known = false;
      for (const auto& target : targets) known = known || target.first == name;
      if (!known) {
        throw FormatError(
            detail::concat(in.source(), ": unexpected entry '", name, "' for ", this->name()));
      }
    }
  }
  autograd::NoGradGuard no_grad;
  for (auto& [name, target] : targets) target.copy_from(entries[name]);
}

}  // namespace tessera::nn
