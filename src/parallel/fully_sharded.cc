#include "tessera/parallel/fully_sharded.h"

#include <algorithm>

#include "tessera/autograd/grad_mode.h"
#include "tessera/autograd/node.h"
#include "tessera/core/error.h"
#include "tessera/nn/linear.h"

namespace tessera::parallel {

struct FullyShardedModel::Unit {
  nn::Module* module = nullptr;
  std::vector<Variable> params;
  std::vector<int64_t> offsets;      // of each parameter in the flat buffer
  std::shared_ptr<Storage> storage;  // the flat buffer (released while not gathered)
  int64_t shard_numel = 0;           // the flat buffer is size() shards of this
  Variable shard;                    // this rank's, what the optimizer updates
  std::shared_ptr<comm::Work> gathering;
  Tensor reducing;  // the flat gradient a reduce-scatter is reading
  std::shared_ptr<comm::Work> reduction;
  Tensor reduced;  // this rank's shard of the summed gradient
  bool gathered = false;
  bool reduced_this_step = false;
  bool resident = false;  // another unit reads its parameters: gathered for the whole step
};

FullyShardedModel::FullyShardedModel(comm::ProcessGroup& group) : group_(group) {}

FullyShardedModel::~FullyShardedModel() {
  for (const auto& u : units_) {
    for (const auto& work : {u->gathering, u->reduction}) {
      if (!work) continue;
      try {
        work->wait();
      } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor reports nothing
      }
    }
  }
}

void FullyShardedModel::add(nn::Module& module) {
  auto unit = std::make_unique<Unit>();
  unit->module = &module;
  // A tied head reads another unit's table: that unit stays gathered through the step.
  if (auto* tied = dynamic_cast<nn::TiedLinear*>(&module)) {
    for (auto& u : units_) {
      if (u->storage && u->storage == tied->weight().data().storage()) u->resident = true;
    }
  }
  unit->params = module.parameters();
  const int ways = group_.size();
  int64_t total = 0;
  for (const Variable& p : unit->params) {
    if (p.data().dtype() != DType::kFloat32) {
      throw ValueError("FullyShardedModel: " + module.name() +
                       " has a parameter that is not float32");
    }
    unit->offsets.push_back(total);
    total += p.numel();
  }
  units_.push_back(std::move(unit));
  Unit& u = *units_.back();
  if (u.params.empty()) return;
  u.shard_numel = (total + ways - 1) / ways;
  u.storage = Storage::allocate(static_cast<size_t>(u.shard_numel * ways) * sizeof(float));
  Tensor flat = Tensor::over(u.storage, {u.shard_numel * ways});
  flat.zero_();
  for (size_t i = 0; i < u.params.size(); ++i) {
    Variable& p = u.params[i];
    Tensor view = flat.slice(0, u.offsets[i], u.offsets[i] + p.numel()).reshape(p.shape());
    view.copy_from(p.data());
    p.set_data(view);
  }
  const int64_t begin = u.shard_numel * group_.rank();
  u.shard = Variable(flat.slice(0, begin, begin + u.shard_numel).clone(), true);
  u.storage->release();
}

std::vector<Variable> FullyShardedModel::shards() const {
  std::vector<Variable> out;
  for (const auto& u : units_) {
    if (u->shard.defined()) out.push_back(u->shard);
  }
  return out;
}

size_t FullyShardedModel::next_with_parameters(size_t unit) const {
  for (size_t i = unit + 1; i < units_.size(); ++i) {
    if (units_[i]->storage) return i;
  }
  return units_.size();
}

size_t FullyShardedModel::previous_with_parameters(size_t unit) const {
  for (size_t i = unit; i-- > 0;) {
    if (units_[i]->storage) return i;
  }
  return units_.size();
}

void FullyShardedModel::start_gather(size_t unit) {
  Unit& u = *units_[unit];
  if (!u.storage || u.gathered || u.gathering) return;
  u.storage->restore();
  u.gathering = group_.allgather(u.shard.data().raw_data(), u.storage->data(),
                                 static_cast<size_t>(u.shard_numel), comm::DataType::kFloat32);
}

void FullyShardedModel::gather(size_t unit) {
  Unit& u = *units_[unit];
  if (!u.storage || u.gathered) return;
  start_gather(unit);
  u.gathering->wait();
  u.gathering.reset();
  u.gathered = true;
}

void FullyShardedModel::release(size_t unit) {
  Unit& u = *units_[unit];
  if (!u.gathered) return;
  u.storage->release();
  u.gathered = false;
}

Variable FullyShardedModel::forward(const Variable& input) {
  const bool training = autograd::grad_enabled();
  Variable x = input;
  for (size_t i = 0; i < units_.size(); ++i) {
    gather(i);
    if (const size_t next = next_with_parameters(i); next < units_.size()) start_gather(next);
    x = (*units_[i]->module)(x);
    if (!units_[i]->resident) release(i);
    if (training && x.requires_grad()) {
      // Runs in backward after every node of unit i + 1 and before any of unit i.
      x = autograd::make_result(x.data(), "fully_sharded_boundary", {x},
                                [this, i](const Tensor& grad, const std::vector<bool>&) {
                                  if (i + 1 < units_.size() && !units_[i + 1]->resident) {
                                    reduce(i + 1);
                                  }
                                  before_backward(i);
                                  return std::vector<Tensor>{grad};
                                });
    }
  }
  for (size_t i = 0; i < units_.size(); ++i) {
    units_[i]->reduced_this_step = false;
    if (!training) release(i);  // a resident unit waits for backward only
  }
  return x;
}

void FullyShardedModel::before_backward(size_t unit) {
  gather(unit);
  const size_t before = previous_with_parameters(unit);
  if (before < units_.size()) start_gather(before);
}

// Sums the unit's gradients into each rank's shard of them, without waiting, and frees them. The
// reduction before it is finished first, so one flat gradient at most is in flight.
void FullyShardedModel::reduce(size_t unit) {
  Unit& u = *units_[unit];
  if (!u.storage || u.reduced_this_step) return;
  u.reduced_this_step = true;
  if (in_flight_ < units_.size()) settle(in_flight_);
  const int ways = group_.size();
  u.reducing = Tensor::zeros({u.shard_numel * ways});
  for (size_t i = 0; i < u.params.size(); ++i) {
    Variable& p = u.params[i];
    if (!p.grad().defined()) continue;
    u.reducing.slice(0, u.offsets[i], u.offsets[i] + p.numel()).copy_from(p.grad().reshape({-1}));
    p.set_grad(Tensor());
  }
  u.reduced = Tensor::empty({u.shard_numel});
  u.reduction = group_.reduce_scatter(u.reducing.raw_data(), u.reduced.raw_data(),
                                      static_cast<size_t>(u.shard_numel), comm::DataType::kFloat32,
                                      comm::ReduceOp::kSum);
  in_flight_ = unit;
  release(unit);
}

void FullyShardedModel::settle(size_t unit) {
  Unit& u = *units_[unit];
  if (!u.reduction) return;
  u.reduction->wait();
  u.reduction.reset();
  u.reducing = Tensor();
  const auto scale = static_cast<float>(1.0 / group_.size());
  for (float& v : u.reduced.span<float>()) v *= scale;
  u.shard.set_grad(u.reduced);
  u.reduced = Tensor();
  if (in_flight_ == unit) in_flight_ = units_.size();
}

void FullyShardedModel::finish_backward() {
  // The units no boundary reduced: the first, a resident one, one whose output needed no gradient.
  for (size_t i = units_.size(); i-- > 0;) reduce(i);
  for (size_t i = 0; i < units_.size(); ++i) settle(i);
}

Variable FullyShardedModel::shard(size_t unit) const { return units_.at(unit)->shard; }

Tensor FullyShardedModel::gather_flat(size_t unit, const Tensor& values) const {
  const Unit& u = *units_.at(unit);
  Tensor flat = Tensor::empty({u.shard_numel * group_.size()});
  const Tensor mine = values.contiguous();
  group_
      .allgather(mine.raw_data(), flat.raw_data(), static_cast<size_t>(u.shard_numel),
                 comm::DataType::kFloat32)
      ->wait();
  return flat;
}

Tensor FullyShardedModel::parameter_in(size_t unit, size_t index, const Tensor& flat) const {
  const Unit& u = *units_.at(unit);
  const Variable& p = u.params.at(index);
  return flat.slice(0, u.offsets[index], u.offsets[index] + p.numel()).reshape(p.shape());
}

void FullyShardedModel::copy_to_shard(size_t unit, size_t index, const Tensor& value,
                                      Tensor& shard) const {
  const Unit& u = *units_.at(unit);
  const int64_t begin = u.offsets.at(index);
  const int64_t end = begin + u.params[index].numel();
  const int64_t first = u.shard_numel * group_.rank();
  const int64_t lo = std::max(begin, first);
  const int64_t hi = std::min(end, first + u.shard_numel);
  if (lo >= hi) return;
  shard.slice(0, lo - first, hi - first)
      .copy_from(value.contiguous().reshape({-1}).slice(0, lo - begin, hi - begin));
}

}  // namespace tessera::parallel
