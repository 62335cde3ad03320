#include "tessera/parallel/distributed_data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "bucket_plan.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/work.h"
#include "tessera/core/error.h"
#include "tessera/parallel/dtype_map.h"
#include "tessera/parallel/model_sync.h"
#include "tessera/tensor/storage.h"

namespace tessera::parallel {

struct DistributedDataParallel::Bucket {
  std::vector<std::size_t> params;
  std::size_t numel = 0;
  Tensor flat;    // float32 [numel]: this rank's gradients, then the sum over ranks
  Tensor wire;    // compressed: every rank's 16-bit gradients (allgather output)
  Tensor staged;  // compressed: this rank's 16-bit gradients (allgather input)
  std::size_t pending = 0;
  bool launched = false;
  std::shared_ptr<comm::Work> work;
};

DistributedDataParallel::DistributedDataParallel(nn::Module& model, comm::ProcessGroup& group,
                                                 DdpOptions options)
    : model_(model), group_(group), options_(options) {
  for (auto& [name, p] : model_.named_parameters()) {
    if (p.dtype() != DType::kFloat32) {
      throw DTypeError("DistributedDataParallel: parameter '" + name + "' is " +
                       dtype_name(p.dtype()) + "; only float32 models are supported");
    }
    names_.push_back(name);
    params_.push_back(p);
  }
  check_same_model(model_, group_, "DistributedDataParallel");
  broadcast_state();

  slots_.resize(params_.size());
  for (const auto& plan :
       plan_buckets(params_, options_.first_bucket_bytes, options_.bucket_bytes)) {
    buckets_.push_back(std::make_unique<Bucket>());
    Bucket& b = *buckets_.back();
    for (std::size_t k : plan) {
      slots_[k] = {buckets_.size() - 1, b.numel};
      b.params.push_back(k);
      b.numel += static_cast<std::size_t>(params_[k].numel());
    }
  }
  const int n = group_.size();
  for (auto& b : buckets_) {
    // From the group: the shared-memory backend allreduces its own memory without copies.
    const std::size_t bytes = b->numel * sizeof(float);
    b->flat = Tensor::over(Storage::wrap(group_.allocate(bytes), bytes),
                           {static_cast<int64_t>(b->numel)});
    b->flat.zero_();
    if (options_.compression != GradCompression::kNone) {
      DType wire =
          options_.compression == GradCompression::kBFloat16 ? DType::kBFloat16 : DType::kFloat16;
      b->wire = Tensor::zeros({static_cast<int64_t>(b->numel) * n}, wire);
      b->staged = Tensor::zeros({static_cast<int64_t>(b->numel)}, wire);
    }
  }
  ready_.assign(params_.size(), false);
  reset_step();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    hook_ids_.push_back(
        params_[i].add_grad_ready_hook([this, i](autograd::Variable&) { on_gradient_ready(i); }));
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (std::size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hook_ids_[i]);
  // Buffers handed to the group must outlive its operations.
  for (auto& b : buckets_) {
    if (b->work) {
      try {
        b->work->wait();
      } catch (...) {  // destructors never throw; the error was or will be reported elsewhere
      }
    }
  }
}

void DistributedDataParallel::broadcast_state() { broadcast_module(model_, group_); }

void DistributedDataParallel::reset_step() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->launched = false;
  }
  next_launch_ = 0;
}

void DistributedDataParallel::on_gradient_ready(std::size_t i) {
  if (!sync_ || ready_[i]) return;
  auto [bucket_index, offset] = slots_[i];
  Bucket& b = *buckets_[bucket_index];
  const Tensor& grad = params_[i].grad();
  Tensor slot = b.flat.slice(0, static_cast<int64_t>(offset),
                             static_cast<int64_t>(offset) + params_[i].numel());
  slot.copy_from(grad.reshape({params_[i].numel()}));
  ready_[i] = true;
  if (--b.pending == 0) launch_ready_buckets();
}

void DistributedDataParallel::launch_ready_buckets() {
  // Every rank launches buckets in the same order, whatever order their gradients came in.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    launch(*buckets_[next_launch_]);
    ++next_launch_;
  }
}

void DistributedDataParallel::launch(Bucket& b) {
  if (next_launch_ == 0) {  // the step's first bucket
    stats_ = {};
    first_launch_ = std::chrono::steady_clock::now();
  }
  b.launched = true;
  ++stats_.buckets;
  if (options_.compression == GradCompression::kNone) {
    b.work = group_.allreduce(b.flat.data<float>(), b.numel, comm::DataType::kFloat32,
                              comm::ReduceOp::kSum);
    stats_.bytes_sent += b.numel * sizeof(float);
    return;
  }
  // 16 bits on the wire, summed in float32: every rank gathers every rank's rounded gradients
  // (for 2 ranks that is half the bytes of a float32 allreduce; the sum stays exact in float32).
  b.staged.copy_from(b.flat);
  b.work =
      group_.allgather(b.staged.raw_data(), b.wire.raw_data(), b.numel, to_comm(b.wire.dtype()));
  stats_.bytes_sent += b.numel * dtype_size(b.wire.dtype());
}

void DistributedDataParallel::synchronize() {
  if (!sync_) return;
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (ready_[i]) continue;
    if (!options_.find_unused_parameters) {
      missing.push_back(names_[i]);
      continue;
    }
    // An unused parameter contributes zero; the bucket still goes out so every rank matches.
    auto [bucket_index, offset] = slots_[i];
    Bucket& b = *buckets_[bucket_index];
    b.flat.slice(0, static_cast<int64_t>(offset), static_cast<int64_t>(offset) + params_[i].numel())
        .zero_();
    ready_[i] = true;
    --b.pending;
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    // Launch nothing more; the step is abandoned. Waiting for what is in flight keeps buffers safe.
    for (auto& b : buckets_) {
      if (b->launched && b->work) b->work->wait();
    }
    reset_step();
    throw Error("DistributedDataParallel: parameters received no gradient in this step: " + list +
                ". If the model really leaves them unused, set find_unused_parameters; if "
                "backward did not run, call synchronize() after loss.backward()");
  }
  launch_ready_buckets();
  const int n = group_.size();
  const float scale = 1.0f / static_cast<float>(n);
  auto start = std::chrono::steady_clock::now();
  for (auto& b : buckets_) {
    b->work->wait();
  }
  auto end = std::chrono::steady_clock::now();
  stats_.wait_seconds = std::chrono::duration<double>(end - start).count();
  double busy = std::chrono::duration<double>(end - first_launch_).count();
  double during_backward = std::chrono::duration<double>(start - first_launch_).count();
  stats_.hidden_fraction = busy > 0 ? std::clamp(during_backward / busy, 0.0, 1.0) : 1.0;
  for (auto& b : buckets_) {
    float* flat = b->flat.data<float>();
    if (options_.compression == GradCompression::kNone) {
      for (std::size_t k = 0; k < b->numel; ++k) flat[k] *= scale;
    } else {
      Tensor all = b->wire.to(DType::kFloat32);  // every rank's rounded gradients
      const float* src = all.data<float>();
      std::fill(flat, flat + b->numel, 0.0f);
      for (int r = 0; r < n; ++r) {
        const float* part = src + static_cast<std::size_t>(r) * b->numel;
        for (std::size_t k = 0; k < b->numel; ++k) flat[k] += part[k];
      }
      for (std::size_t k = 0; k < b->numel; ++k) flat[k] *= scale;
    }
    b->work.reset();
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto [bucket_index, offset] = slots_[i];
    // A view into the bucket: no copy. The next step's backward replaces the gradient before the
    // bucket is written again.
    params_[i].set_grad(buckets_[bucket_index]
                            ->flat
                            .slice(0, static_cast<int64_t>(offset),
                                   static_cast<int64_t>(offset) + params_[i].numel())
                            .reshape(params_[i].shape()));
  }
  reset_step();
}

}  // namespace tessera::parallel
