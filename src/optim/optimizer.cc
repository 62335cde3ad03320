#include "tessera/optim/optimizer.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::optim {
namespace {

constexpr uint32_t kStateVersion = 1;
// Longer than any kind tag; a corrupt length is refused before allocating.
constexpr size_t kMaxKindLength = 64;

}  // namespace

Optimizer::Optimizer(std::vector<autograd::Variable> params, double lr)
    : params_(std::move(params)), states_(params_.size()), lr_(lr) {
  if (params_.empty()) throw ValueError("optimizer: got an empty parameter list");
  if (!(lr >= 0.0) || !std::isfinite(lr)) {
    throw ValueError(detail::concat("optimizer: invalid lr ", lr, " (must be finite and >= 0)"));
  }
  std::unordered_map<const autograd::VariableImpl*, size_t> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const autograd::Variable& p = params_[i];
    if (!p.defined()) throw ValueError(detail::concat("optimizer: parameter ", i, " is undefined"));
    if (!p.is_leaf()) {
      throw ValueError(detail::concat("optimizer: ", param_label(i),
                                      " is not a leaf (it is the result of an operation)"));
    }
    DType dtype = p.data().dtype();
    if (dtype != DType::kFloat32 && dtype != DType::kFloat64) {
      throw DTypeError(detail::concat("optimizer: ", param_label(i), " is ", dtype_name(dtype),
                                      ", expected float32 or float64"));
    }
    if (!p.data().is_contiguous()) {
      throw ValueError(detail::concat("optimizer: ", param_label(i), " of shape ",
                                      shape_str(p.shape()), " is not contiguous"));
    }
    auto [it, inserted] = seen.emplace(p.impl(), i);
    if (!inserted) {
      throw ValueError(detail::concat("optimizer: ", param_label(i), " repeats parameter ",
                                      it->second, "; it would be updated twice per step"));
    }
  }
}

void Optimizer::set_lr(double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr)) {
    throw ValueError(detail::concat(kind(), ": invalid lr ", lr, " (must be finite and >= 0)"));
  }
  lr_ = lr;
}

const ParamState& Optimizer::state(size_t index) const {
  if (index >= states_.size()) {
    throw IndexError(
        detail::concat(kind(), ".state: index ", index, " with ", states_.size(), " parameters"));
  }
  return states_[index];
}

std::string Optimizer::param_label(size_t index) const {
  const std::string& name = params_[index].name();
  if (name.empty()) return detail::concat("parameter ", index);
  return detail::concat("parameter ", index, " ('", name, "')");
}

void Optimizer::check_param(size_t index) const {
  const autograd::Variable& p = params_[index];
  const Tensor& data = p.data();
  const Tensor& grad = p.grad();
  if (grad.shape() != data.shape()) {
    throw ShapeError(detail::concat(kind(), ".step: ", param_label(index), " has shape ",
                                    shape_str(data.shape()), " but its gradient ",
                                    shape_str(grad.shape())));
  }
  if (grad.dtype() != data.dtype()) {
    throw DTypeError(detail::concat(kind(), ".step: ", param_label(index), " is ",
                                    dtype_name(data.dtype()), " but its gradient ",
                                    dtype_name(grad.dtype())));
  }
  if (!data.is_contiguous()) {
    throw ValueError(detail::concat(kind(), ".step: ", param_label(index),
                                    " is no longer contiguous (replaced by set_data?)"));
  }
  for (const Tensor& buffer : states_[index].buffers) {
    // Buffers were made for this parameter; a set_data of another shape or dtype breaks them.
    if (buffer.shape() != data.shape() || buffer.dtype() != data.dtype()) {
      throw ShapeError(detail::concat(kind(), ".step: ", param_label(index), " is now ",
                                      dtype_name(data.dtype()), " ", shape_str(data.shape()),
                                      " but its state was made for ", dtype_name(buffer.dtype()),
                                      " ", shape_str(buffer.shape())));
    }
  }
}

void Optimizer::step() {
  // Check every parameter before touching any, so a bad one does not leave half a step applied.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].grad().defined()) check_param(i);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const autograd::Variable& p = params_[i];
    if (!p.grad().defined()) continue;
    // The update loops read the gradient as a flat array; a strided one is rare enough to copy.
    const Tensor& grad = p.grad();
    ParamState& state = states_[i];
    ++state.step;
    update(p.data(), grad.is_contiguous() ? grad : grad.contiguous(), state);
  }
}

void Optimizer::zero_grad() {
  for (autograd::Variable& p : params_) p.zero_grad();
}

void write_optimizer_state(BinaryWriter& out, const std::string& kind, double lr,
                           const std::vector<ParamState>& params) {
  out.write_string(kind);
  out.write_u32(kStateVersion);
  out.write_f64(lr);
  out.write_u64(params.size());
  for (const ParamState& state : params) {
    out.write_i64(state.step);
    out.write_u32(static_cast<uint32_t>(state.buffers.size()));
    for (const Tensor& buffer : state.buffers) write_tensor(out, buffer);
  }
}

void Optimizer::save_state(BinaryWriter& out) const {
  write_optimizer_state(out, kind(), lr_, states_);
}

SavedOptimizerState read_optimizer_state(BinaryReader& in) {
  const std::string where = "optimizer state " + in.source();
  SavedOptimizerState saved;
  saved.kind = in.read_string(kMaxKindLength);
  uint32_t version = in.read_u32();
  if (version != kStateVersion) {
    throw FormatError(
        detail::concat(where, ": state version ", version, ", expected ", kStateVersion));
  }
  saved.lr = in.read_f64();
  if (!(saved.lr >= 0.0) || !std::isfinite(saved.lr)) {
    throw FormatError(detail::concat(where, ": invalid lr ", saved.lr));
  }
  uint64_t count = in.read_u64();
  constexpr uint64_t kMaxParams = uint64_t{1} << 24;
  if (count > kMaxParams) {
    throw FormatError(detail::concat(where, ": corrupt parameter count ", count));
  }
  saved.params.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    ParamState& state = saved.params[i];
    state.step = in.read_i64();
    if (state.step < 0) {
      throw FormatError(
          detail::concat(where, ": parameter ", i, ": negative step count ", state.step));
    }
    uint32_t buffers = in.read_u32();
    constexpr uint32_t kMaxBuffers = 16;
    if (buffers > kMaxBuffers) {
      throw FormatError(
          detail::concat(where, ": parameter ", i, ": corrupt buffer count ", buffers));
    }
    for (uint32_t b = 0; b < buffers; ++b) {
      Tensor buffer = read_tensor(in);
      if (buffer.dtype() != DType::kFloat32 && buffer.dtype() != DType::kFloat64) {
        throw FormatError(detail::concat(where, ": parameter ", i, ": state buffer ", b, " is ",
                                         dtype_name(buffer.dtype())));
      }
      state.buffers.push_back(std::move(buffer));
    }
  }
  return saved;
}

void Optimizer::load_state(BinaryReader& in) {
  const std::string where = detail::concat(kind(), ".load_state: ", in.source());
  SavedOptimizerState saved = read_optimizer_state(in);
  if (saved.kind != kind()) {
    throw FormatError(detail::concat(where, ": state is for optimizer '", saved.kind,
                                     "', expected '", kind(), "'"));
  }
  if (saved.params.size() != params_.size()) {
    throw FormatError(detail::concat(where, ": state holds ", saved.params.size(),
                                     " parameters, the optimizer has ", params_.size()));
  }
  // Check everything first so a failure leaves this optimizer as it was.
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& data = params_[i].data();
    ParamState& state = saved.params[i];
    // Buffers exist exactly when the parameter has been updated (and the options keep any).
    const size_t expected = state.step == 0 ? 0 : num_buffers();
    if (state.buffers.size() != expected) {
      throw FormatError(detail::concat(where, ": ", param_label(i), ": ", state.buffers.size(),
                                       " state buffers after ", state.step, " steps, expected ",
                                       expected, " for these options"));
    }
    for (size_t b = 0; b < state.buffers.size(); ++b) {
      if (state.buffers[b].shape() != data.shape()) {
        throw ShapeError(detail::concat(where, ": ", param_label(i), " has shape ",
                                        shape_str(data.shape()), " but its state buffer ", b,
                                        " has shape ", shape_str(state.buffers[b].shape())));
      }
      // As PyTorch's load_state_dict: state follows the parameter's dtype.
      state.buffers[b] = state.buffers[b].to(data.dtype());
    }
  }
  states_ = std::move(saved.params);
  lr_ = saved.lr;
}

void Optimizer::set_state(size_t index, ParamState state) {
  if (index >= params_.size()) {
    throw ValueError(detail::concat(kind(), ".set_state: index ", index, " but the optimizer has ",
                                    params_.size(), " parameters"));
  }
  const size_t expected = state.step == 0 ? 0 : num_buffers();
  if (state.step < 0 || state.buffers.size() != expected) {
    throw FormatError(detail::concat(kind(), ".set_state: ", param_label(index), ": ",
                                     state.buffers.size(), " buffers after ", state.step,
                                     " steps, expected ", expected));
  }
  const Tensor& data = params_[index].data();
  for (auto& buffer : state.buffers) {
    if (buffer.shape() != data.shape()) {
      throw ShapeError(detail::concat(kind(), ".set_state: ", param_label(index), " has shape ",
                                      shape_str(data.shape()), " but a state buffer has ",
                                      shape_str(buffer.shape())));
    }
    buffer = buffer.to(data.dtype()).contiguous();
  }
  states_[index] = std::move(state);
}

}  // namespace tessera::optim
