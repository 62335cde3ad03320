#include "tessera/parallel/zero_optimizer.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/work.h"
#include "tessera/core/error.h"
#include "tessera/core/serialize.h"
#include "tessera/parallel/model_sync.h"

namespace tessera::parallel {

ZeroOptimizer::ZeroOptimizer(nn::Module& model, comm::ProcessGroup& group,
                             const Factory& make_optimizer, ZeroOptions options)
    : model_(model), group_(group), options_(options) {
  if (options_.stage != 1 && options_.stage != 2) {
    throw ValueError(detail::concat("ZeroOptimizer: stage ", options_.stage, " must be 1 or 2"));
  }
  check_same_model(model_, group_, "ZeroOptimizer");
  broadcast_module(model_, group_);
  for (auto& [name, p] : model_.named_parameters()) {
    if (p.dtype() != DType::kFloat32) {
      throw DTypeError("ZeroOptimizer: parameter '" + name + "' is " + dtype_name(p.dtype()) +
                       "; only float32 models are supported");
    }
    params_.push_back(p);
    total_ += p.numel();
  }
  const int64_t n = group_.size();
  shard_size_ = (total_ + n - 1) / n;
  flat_params_ = Tensor::zeros({shard_size_ * n});
  autograd::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& p : params_) {
    Tensor view = flat_params_.slice(0, offset, offset + p.numel());
    view.copy_from(p.data().reshape({p.numel()}));
    p.set_data(view.reshape(p.shape()));
    offset += p.numel();
  }
  shard_begin_ = std::min(total_, group_.rank() * shard_size_);
  shard_end_ = std::min(total_, shard_begin_ + shard_size_);
  staging_ = Tensor::zeros({shard_size_});
  // The shard is a view of the flat parameters: the inner optimizer updates them in place.
  shard_ = autograd::Variable(flat_params_.slice(0, shard_begin_, shard_end_), true);
  shard_.set_name(
      detail::concat("zero shard ", group_.rank(), " [", shard_begin_, ", ", shard_end_, ")"));
  inner_ = make_optimizer({shard_});
}

int64_t ZeroOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& b : inner_->state(0).buffers) bytes += static_cast<int64_t>(b.nbytes());
  return bytes;
}

void ZeroOptimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
  shard_.zero_grad();
}

void ZeroOptimizer::step() {
  const int64_t n = group_.size();
  Tensor flat_grad = Tensor::zeros({shard_size_ * n});
  int64_t offset = 0;
  for (auto& p : params_) {
    if (p.grad().defined()) {
      flat_grad.slice(0, offset, offset + p.numel()).copy_from(p.grad().reshape({p.numel()}));
    }
    offset += p.numel();
  }
  Tensor grad_shard;
  if (options_.stage == 1) {
    group_
        .allreduce(flat_grad.data<float>(), static_cast<size_t>(flat_grad.numel()),
                   comm::DataType::kFloat32, comm::ReduceOp::kSum)
        ->wait();
    grad_shard = flat_grad.slice(0, shard_begin_, shard_end_).clone();
  } else {
    Tensor reduced = Tensor::empty({shard_size_});
    group_
        .reduce_scatter(flat_grad.data<float>(), reduced.data<float>(),
                        static_cast<size_t>(shard_size_), comm::DataType::kFloat32,
                        comm::ReduceOp::kSum)
        ->wait();
    grad_shard = reduced.slice(0, 0, shard_end_ - shard_begin_).clone();
  }
  flat_grad = Tensor();  // the whole gradient is not kept
  float* g = grad_shard.data<float>();
  const float scale = 1.0f / static_cast<float>(n);
  double norm_squared = 0.0;
  for (int64_t i = 0; i < grad_shard.numel(); ++i) {
    g[i] *= scale;
    norm_squared += static_cast<double>(g[i]) * g[i];
  }
  if (options_.max_grad_norm > 0) {
    group_.allreduce(&norm_squared, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
    double norm = std::sqrt(norm_squared);
    double factor = options_.max_grad_norm / (norm + 1e-6);
    if (factor < 1.0) {
      for (int64_t i = 0; i < grad_shard.numel(); ++i) g[i] = static_cast<float>(g[i] * factor);
    }
  }
  shard_.set_grad(grad_shard);
  inner_->step();
  staging_.slice(0, 0, shard_end_ - shard_begin_).copy_from(shard_.data());
  group_
      .allgather(staging_.data<float>(), flat_params_.data<float>(),
                 static_cast<size_t>(shard_size_), comm::DataType::kFloat32)
      ->wait();
}

std::string ZeroOptimizer::save_shard() const {
  std::ostringstream out;
  BinaryWriter w(out);
  w.write_i64(total_);
  w.write_i64(shard_begin_);
  w.write_i64(shard_end_);
  inner_->save_state(w);
  return out.str();
}

void ZeroOptimizer::load_shards(const std::vector<std::string>& shards) {
  // Reassemble the whole state from the old shards, then cut this rank's new slice out of it.
  std::vector<std::vector<float>> whole;
  int64_t step = -1;
  double lr = inner_->lr();
  int64_t covered = 0;
  for (size_t r = 0; r < shards.size(); ++r) {
    std::istringstream in(shards[r]);
    BinaryReader reader(in, detail::concat("ZeRO shard ", r, " of ", shards.size()));
    int64_t total = reader.read_i64();
    int64_t begin = reader.read_i64();
    int64_t end = reader.read_i64();
    if (total != total_ || begin != covered || end < begin || end > total) {
      throw FormatError(detail::concat(reader.source(), ": covers [", begin, ", ", end, ") of ",
                                       total, " parameters; expected to start at ", covered, " of ",
                                       total_));
    }
    optim::SavedOptimizerState saved = optim::read_optimizer_state(reader);
    if (saved.kind != inner_->kind() || saved.params.size() != 1) {
      throw FormatError(detail::concat(reader.source(), ": holds ", saved.params.size(),
                                       " parameters of a '", saved.kind,
                                       "' optimizer; this run uses '", inner_->kind(), "'"));
    }
    lr = saved.lr;
    optim::ParamState& state = saved.params[0];
    for (const auto& b : state.buffers) {
      if (b.numel() != end - begin) {
        throw FormatError(detail::concat(reader.source(), ": state buffer of ", b.numel(),
                                         " values for a shard of ", end - begin));
      }
    }
    if (step >= 0 && state.step != step) {
      throw FormatError(detail::concat(reader.source(), ": step count ", state.step,
                                       " differs from the other shards' ", step));
    }
    step = state.step;
    if (whole.empty()) whole.resize(state.buffers.size());
    for (size_t b = 0; b < state.buffers.size(); ++b) {
      Tensor values = state.buffers[b].to(DType::kFloat32).contiguous();
      std::span<float> v = values.span<float>();
      whole[b].insert(whole[b].end(), v.begin(), v.end());
    }
    covered = end;
  }
  if (covered != total_) {
    throw FormatError(detail::concat("ZeRO shards cover ", covered, " of ", total_, " parameters"));
  }
  optim::ParamState mine;
  mine.step = step;
  for (auto& b : whole) {
    std::vector<float> slice(b.begin() + shard_begin_, b.begin() + shard_end_);
    mine.buffers.push_back(Tensor::from_vector(slice, {shard_end_ - shard_begin_}));
  }
  inner_->set_state(0, std::move(mine));
  inner_->set_lr(lr);
}

}  // namespace tessera::parallel
