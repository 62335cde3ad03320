#include "tessera/parallel/distributed_data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/work.h"
#include "tessera/core/error.h"
#include "tessera/parallel/dtype_map.h"

namespace tessera::parallel {

struct DistributedDataParallel::Bucket {
  std::vector<std::size_t> params;
  std::size_t numel = 0;
  Tensor flat;  // float32 [numel]: this rank's gradients, then the sum over ranks
  Tensor wire;    // compressed: every rank's 16-bit gradients (allgather output)
  Tensor staged;  // compressed: this rank's 16-bit gradients (allgather input)
  std::size_t pending = 0;
  bool launched = false;
  std::shared_ptr<comm::Work> work;
};

namespace {

std::string describe(const std::string& name, const Tensor& t) {
  return name + " " + shape_str(t.shape()) + " " + dtype_name(t.dtype());
}

}  // namespace

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
  check_same_model();
  broadcast_state();

  // Buckets in reverse registration order: the last layers' gradients are ready first.
  slots_.resize(params_.size());
  std::size_t limit = options_.first_bucket_bytes;
  for (std::size_t k = params_.size(); k-- > 0;) {
    std::size_t bytes = static_cast<std::size_t>(params_[k].numel()) * sizeof(float);
    if (buckets_.empty() || (buckets_.back()->numel * sizeof(float) + bytes > limit &&
                             !buckets_.back()->params.empty())) {
      if (!buckets_.empty()) limit = options_.bucket_bytes;
      buckets_.push_back(std::make_unique<Bucket>());
    }
    Bucket& b = *buckets_.back();
    slots_[k] = {buckets_.size() - 1, b.numel};
    b.params.push_back(k);
    b.numel += static_cast<std::size_t>(params_[k].numel());
  }
  const int n = group_.size();
  for (auto& b : buckets_) {
    b->flat = Tensor::zeros({static_cast<int64_t>(b->numel)});
    if (options_.compression != GradCompression::kNone) {
      DType wire = options_.compression == GradCompression::kBFloat16 ? DType::kBFloat16
                                                                      : DType::kFloat16;
      b->wire = Tensor::zeros({static_cast<int64_t>(b->numel) * n}, wire);
      b->staged = Tensor::zeros({static_cast<int64_t>(b->numel)}, wire);
    }
  }
  ready_.assign(params_.size(), false);
  reset_step();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    hook_ids_.push_back(params_[i].add_grad_ready_hook(
        [this, i](autograd::Variable&) { on_gradient_ready(i); }));
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

void DistributedDataParallel::check_same_model() {
  std::string mine;
  for (std::size_t i = 0; i < params_.size(); ++i) mine += describe(names_[i], params_[i].data()) + "\n";
  for (auto& [name, b] : model_.named_buffers()) mine += describe(name, b) + "\n";
  const int n = group_.size();
  std::vector<int64_t> lengths(static_cast<std::size_t>(n));
  int64_t length = static_cast<int64_t>(mine.size());
  group_.allgather(&length, lengths.data(), 1, comm::DataType::kInt64)->wait();
  std::vector<std::size_t> counts(lengths.begin(), lengths.end());
  // The descriptions travel as int32 words (comm has no byte type), zero-padded.
  std::vector<std::size_t> words(counts.size());
  for (std::size_t r = 0; r < counts.size(); ++r) words[r] = (counts[r] + 3) / 4;
  std::vector<int32_t> in((mine.size() + 3) / 4, 0);
  std::memcpy(in.data(), mine.data(), mine.size());
  std::size_t total_words = 0;
  for (auto w : words) total_words += w;
  std::vector<int32_t> out(total_words);
  group_.allgatherv(in.data(), in.size(), out.data(), words, comm::DataType::kInt32)->wait();
  std::vector<std::string> models;
  std::size_t at = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    models.emplace_back(reinterpret_cast<const char*>(out.data() + at), counts[r]);
    at += words[r];
  }
  auto lines = [](const std::string& s) {
    std::vector<std::string> v;
    std::size_t start = 0;
    while (start < s.size()) {
      std::size_t end = s.find('\n', start);
      v.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return v;
  };
  auto reference = lines(models[0]);
  for (int r = 1; r < n; ++r) {
    auto other = lines(models[static_cast<std::size_t>(r)]);
    for (std::size_t i = 0; i < std::max(reference.size(), other.size()); ++i) {
      std::string a = i < reference.size() ? reference[i] : "(nothing)";
      std::string b = i < other.size() ? other[i] : "(nothing)";
      if (a != b) {
        throw Error(detail::concat("DistributedDataParallel: the ranks built different models: "
                                   "entry ", i, " is '", a, "' on rank 0 but '", b, "' on rank ", r));
      }
    }
  }
}

void DistributedDataParallel::broadcast_state() {
  std::vector<std::shared_ptr<comm::Work>> works;
  std::vector<Tensor> targets;
  for (auto& p : params_) targets.push_back(p.data());
  for (auto& [name, b] : model_.named_buffers()) targets.push_back(b);
  for (auto& t : targets) {
    if (!t.is_contiguous()) throw ValueError("DistributedDataParallel: non-contiguous state");
    works.push_back(group_.broadcast(t.raw_data(), static_cast<std::size_t>(t.numel()),
                                     to_comm(t.dtype()), 0));
  }
  for (auto& w : works) w->wait();
}

void DistributedDataParallel::reset_step() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->launched = false;
  }
  next_launch_ = 0;
  stats_ = {};
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
  b.work = group_.allgather(b.staged.raw_data(), b.wire.raw_data(), b.numel,
                            to_comm(b.wire.dtype()));
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
  stats_.wait_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
                            ->flat.slice(0, static_cast<int64_t>(offset),
                                         static_cast<int64_t>(offset) + params_[i].numel())
                            .reshape(params_[i].shape()));
  }
  DdpStats done = stats_;
  reset_step();
  stats_ = done;
}

}  // namespace tessera::parallel
