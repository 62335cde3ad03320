#include "tessera/parallel/zero_optimizer.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "bucket_plan.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/work.h"
#include "tessera/core/error.h"
#include "tessera/core/serialize.h"
#include "tessera/parallel/model_sync.h"

namespace tessera::parallel {

struct ZeroOptimizer::Bucket {
  // The part of the bucket one rank's shard holds, reduced to that rank.
  struct Piece {
    int64_t begin = 0;  // in the flat vector
    int64_t end = 0;
    int owner = 0;
    // This rank's gradients for [begin, end): a view of grad_shard_ where this rank owns the piece
    // (the reduction leaves the sum there); else a view of the one gradient that holds all of
    // them, or memory of its own, either freed when the reduction is done.
    Tensor buffer{};
    std::shared_ptr<comm::Work> work{};
  };
  std::vector<std::size_t> params;
  std::vector<Piece> pieces;
  std::size_t pending = 0;  // parameters whose gradient has not arrived this step
  bool launched = false;
};

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
  if (options_.stage == 2) plan_reductions();
}

ZeroOptimizer::~ZeroOptimizer() {
  for (std::size_t i = 0; i < hook_ids_.size(); ++i) params_[i].remove_hook(hook_ids_[i]);
  for (auto& b : buckets_) {
    for (auto& piece : b->pieces) {
      if (!piece.work) continue;
      try {
        piece.work->wait();
      } catch (...) {  // destructors never throw; the error was or will be reported elsewhere
      }
    }
  }
}

void ZeroOptimizer::plan_reductions() {
  grad_shard_ = Tensor::zeros({shard_end_ - shard_begin_});
  int64_t offset = 0;
  for (auto& p : params_) {
    offsets_.push_back(offset);
    offset += p.numel();
  }
  bucket_of_.resize(params_.size());
  for (const auto& plan :
       plan_buckets(params_, options_.first_bucket_bytes, options_.bucket_bytes)) {
    auto bucket = std::make_unique<Bucket>();
    bucket->params = plan;
    // Parameters in reverse order: the bucket is the flat range from the last one's start to the
    // first one's end.
    int64_t begin = offsets_[plan.back()];
    const int64_t end = offsets_[plan.front()] + params_[plan.front()].numel();
    while (begin < end) {
      const auto owner = static_cast<int>(begin / shard_size_);
      const int64_t piece_end = std::min(end, (owner + 1) * shard_size_);
      Bucket::Piece piece{.begin = begin, .end = piece_end, .owner = owner};
      if (owner == group_.rank()) {
        piece.buffer = grad_shard_.slice(0, begin - shard_begin_, piece_end - shard_begin_);
      }
      bucket->pieces.push_back(std::move(piece));
      begin = piece_end;
    }
    for (std::size_t k : plan) bucket_of_[k] = buckets_.size();
    buckets_.push_back(std::move(bucket));
  }
  ready_.assign(params_.size(), false);
  reset_step();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    hook_ids_.push_back(
        params_[i].add_grad_ready_hook([this, i](autograd::Variable&) { on_gradient_ready(i); }));
  }
}

void ZeroOptimizer::on_gradient_ready(std::size_t i) {
  if (ready_[i]) {
    throw ValueError(detail::concat(
        "ZeroOptimizer (stage 2): parameter ", i, " (", params_[i].name(),
        ") got a second gradient before step(): its first one is already being reduced; run one "
        "backward per step (sum micro-batch losses before backward to accumulate)"));
  }
  // Memory of buckets reduced since the last gradient goes before this one's is taken.
  retire_buckets(false);
  write_gradient(i, params_[i].grad());
  // The bucket holds what it needs now: the whole-size gradient goes while backward goes on.
  params_[i].zero_grad();
  ready_[i] = true;
  if (--buckets_[bucket_of_[i]]->pending == 0) launch_ready_buckets();
}

void ZeroOptimizer::write_gradient(std::size_t i, const Tensor& grad) {
  const int64_t begin = offsets_[i];
  const int64_t end = begin + params_[i].numel();
  const Tensor flat = grad.defined() ? grad.reshape({params_[i].numel()}) : Tensor();
  for (auto& piece : buckets_[bucket_of_[i]]->pieces) {
    const int64_t lo = std::max(begin, piece.begin);
    const int64_t hi = std::min(end, piece.end);
    if (lo >= hi) continue;
    if (piece.owner != group_.rank() && flat.defined() && lo == piece.begin && hi == piece.end) {
      // Reduced straight from the gradient, which nothing else holds now: no copy, and the
      // reduction may use it as scratch space.
      piece.buffer = flat.slice(0, lo - begin, hi - begin);
      continue;
    }
    // The bucket's parameters together fill every piece: no need to clear it first.
    if (!piece.buffer.defined()) piece.buffer = Tensor::empty({piece.end - piece.begin});
    Tensor to = piece.buffer.slice(0, lo - piece.begin, hi - piece.begin);
    if (flat.defined()) {
      to.copy_from(flat.slice(0, lo - begin, hi - begin));
    } else {
      to.zero_();
    }
  }
}

void ZeroOptimizer::launch_ready_buckets() {
  // Every rank launches buckets in the same order, whatever order their gradients came in.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    Bucket& b = *buckets_[next_launch_];
    for (auto& piece : b.pieces) {
      piece.work = group_.reduce(piece.buffer.data<float>(),
                                 static_cast<std::size_t>(piece.end - piece.begin),
                                 comm::DataType::kFloat32, comm::ReduceOp::kSum, piece.owner);
    }
    b.launched = true;
    ++next_launch_;
  }
  retire_buckets(false);
}

void ZeroOptimizer::retire_buckets(bool wait) {
  for (auto& b : buckets_) {
    if (!b->launched) continue;
    const bool done = std::all_of(b->pieces.begin(), b->pieces.end(), [](const auto& piece) {
      return !piece.work || piece.work->is_completed();
    });
    if (!done && !wait) continue;
    for (auto& piece : b->pieces) {
      if (!piece.work) continue;
      piece.work->wait();  // rethrows the reduction's error
      piece.work.reset();
      if (piece.owner != group_.rank()) piece.buffer = Tensor();
    }
  }
}

void ZeroOptimizer::reset_step() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->launched = false;
  }
  next_launch_ = 0;
}

int64_t ZeroOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& b : inner_->state(0).buffers) bytes += static_cast<int64_t>(b.nbytes());
  return bytes;
}

void ZeroOptimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
  shard_.zero_grad();
  if (options_.stage == 2) {
    retire_buckets(true);
    reset_step();
  }
}

Tensor ZeroOptimizer::allreduce_gradient() {
  const int64_t n = group_.size();
  Tensor flat_grad = Tensor::zeros({shard_size_ * n});
  int64_t offset = 0;
  for (auto& p : params_) {
    if (p.grad().defined()) {
      flat_grad.slice(0, offset, offset + p.numel()).copy_from(p.grad().reshape({p.numel()}));
    }
    offset += p.numel();
  }
  group_
      .allreduce(flat_grad.data<float>(), static_cast<size_t>(flat_grad.numel()),
                 comm::DataType::kFloat32, comm::ReduceOp::kSum)
      ->wait();
  return flat_grad.slice(0, shard_begin_, shard_end_).clone();
}

void ZeroOptimizer::step() {
  const int64_t n = group_.size();
  Tensor grad_shard;
  if (options_.stage == 1) {
    grad_shard = allreduce_gradient();
  } else {
    // Parameters that got no gradient this step count as zero.
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (ready_[i]) continue;
      write_gradient(i, Tensor());
      ready_[i] = true;
      --buckets_[bucket_of_[i]]->pending;
    }
    launch_ready_buckets();
    retire_buckets(true);
    reset_step();
    grad_shard = grad_shard_;
  }
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
