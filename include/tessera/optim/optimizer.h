#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/core/serialize.h"
#include "tessera/tensor/tensor.h"

namespace tessera::optim {

// What an optimizer keeps for one parameter.
struct ParamState {
  // Updates applied to this parameter so far (a parameter without a gradient is not counted).
  int64_t step = 0;
  // Per-element buffers (momentum, moments, sums), each of the parameter's shape and dtype.
  // Empty until the parameter's first update allocates them.
  std::vector<Tensor> buffers;
};

// Base of the optimizers: holds the parameters, their state and the learning rate.
//
// The parameters are shared with the caller (a Variable copy is a handle): step() writes the new
// values in place into each parameter's data tensor, so views of it and modules holding it see
// them. Each parameter must be a float32 or float64 contiguous leaf; its state buffers take its
// dtype. Not thread-safe; one per rank. Not copyable (the state belongs to these parameters).
// What save_state wrote, read without an optimizer (to re-shard or inspect it).
struct SavedOptimizerState {
  std::string kind;
  double lr = 0.0;
  std::vector<ParamState> params;
};
// Reads the format only (version, counts, buffer dtypes); throws FormatError naming the source.
[[nodiscard]] SavedOptimizerState read_optimizer_state(BinaryReader& in);
// Writes what Optimizer::save_state writes, from parts (to put re-sharded state together).
void write_optimizer_state(BinaryWriter& out, const std::string& kind, double lr,
                           const std::vector<ParamState>& params);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter whose gradient is defined; a parameter without one is
  // skipped and its step count does not advance (as in PyTorch). Throws ShapeError or DTypeError
  // naming the parameter when its gradient (or its state, after a set_data) does not match its
  // data, ValueError when its data is no longer contiguous; every parameter is checked before
  // any is updated.
  void step();
  // Makes every parameter's gradient undefined (PyTorch's set_to_none=True).
  void zero_grad();

  [[nodiscard]] double lr() const { return lr_; }
  // Throws ValueError on a negative or non-finite value.
  void set_lr(double lr);

  [[nodiscard]] const std::vector<autograd::Variable>& params() const { return params_; }
  // Throws IndexError when index >= params().size().
  [[nodiscard]] const ParamState& state(size_t index) const;
  // Replaces parameter `index`'s state (for re-sharded checkpoints). Throws FormatError when the
  // buffer count does not fit the step count and options, ShapeError when a buffer's shape is
  // not the parameter's; buffers are converted to the parameter's dtype.
  void set_state(size_t index, ParamState state);
  // "sgd", "adam", "adamw", "adagrad": the tag save_state writes and load_state checks.
  [[nodiscard]] virtual const char* kind() const = 0;

  // Writes the kind, the learning rate, and each parameter's step count and buffers.
  void save_state(BinaryWriter& out) const;
  // Reads what save_state wrote, for an optimizer of the same kind over parameters of the same
  // shapes, in order. Throws FormatError on another kind, another parameter count, a buffer count
  // that does not fit the options, or data cut short; ShapeError naming the parameter (index and
  // name) when a buffer's shape differs from it. Buffers of the other float dtype are converted to
  // the parameter's. Nothing is changed unless the whole state loads.
  void load_state(BinaryReader& in);

 protected:
  // Throws ValueError on an empty list, an undefined, non-leaf, non-contiguous or repeated
  // parameter, or a negative lr; DTypeError on a parameter that is not float32 or float64.
  Optimizer(std::vector<autograd::Variable> params, double lr);

  // Updates one parameter in place. state.step already counts this update; state.buffers is
  // empty on the first update and must then be filled with num_buffers() tensors. param and grad
  // are contiguous, of the same shape and dtype.
  virtual void update(const Tensor& param, const Tensor& grad, ParamState& state) = 0;
  // How many buffers update() keeps per parameter (fixed by the options).
  [[nodiscard]] virtual size_t num_buffers() const = 0;

  // "parameter 3 ('fc.weight')", or "parameter 3" for an unnamed one: for error messages.
  [[nodiscard]] std::string param_label(size_t index) const;

 private:
  // Throws as step() documents when parameter index (which has a gradient) cannot be updated.
  void check_param(size_t index) const;

  std::vector<autograd::Variable> params_;
  std::vector<ParamState> states_;
  double lr_;
};

}  // namespace tessera::optim
