#include "tessera/data/distributed_sampler.h"

#include <algorithm>
#include <iterator>
#include <numeric>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/core/random.h"

namespace tessera::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, int rank, int world_size,
                                       const SamplerOptions& options)
    : dataset_size_(dataset_size), rank_(rank), world_size_(world_size), options_(options) {
  if (dataset_size < 0) {
    throw ValueError(
        detail::concat("DistributedSampler: dataset_size is ", dataset_size, ", expected >= 0"));
  }
  if (world_size < 1) {
    throw ValueError(
        detail::concat("DistributedSampler: world_size is ", world_size, ", expected >= 1"));
  }
  if (rank < 0 || rank >= world_size) {
    throw ValueError(
        detail::concat("DistributedSampler: rank ", rank, " is outside [0, ", world_size, ")"));
  }
  num_samples_ =
      options_.drop_last ? dataset_size / world_size : (dataset_size + world_size - 1) / world_size;
  set_epoch(0);
}

void DistributedSampler::set_epoch(int64_t epoch) { set_state({epoch, 0}); }

void DistributedSampler::set_state(const SamplerState& state) {
  if (state.epoch < 0) {
    throw ValueError(
        detail::concat("DistributedSampler::set_state: epoch ", state.epoch, " is negative"));
  }
  if (state.position < 0 || state.position > dataset_size_) {
    throw ValueError(detail::concat("DistributedSampler::set_state: position ", state.position,
                                    " is outside [0, ", dataset_size_,
                                    "] (the positions of an epoch's order: the dataset size)"));
  }
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options_.shuffle && dataset_size_ > 1) {
    // Every rank seeds the same way, so all compute the same permutation.
    Generator gen(options_.seed + static_cast<uint64_t>(state.epoch));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(gen.below(static_cast<uint64_t>(i) + 1));
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
    }
  }
  const int64_t left = dataset_size_ - state.position;
  const int64_t dealt = options_.drop_last ? left / world_size_ * world_size_
                        : options_.pad     ? (left + world_size_ - 1) / world_size_ * world_size_
                                           : left;
  indices_.clear();
  for (int64_t p = state.position + rank_; p < state.position + dealt; p += world_size_) {
    // Positions past the end wrap around: the padding.
    indices_.push_back(order[static_cast<size_t>(p % dataset_size_)]);
  }
  epoch_ = state.epoch;
  start_ = state.position;
  position_ = 0;
}

SamplerState DistributedSampler::state() const {
  return {epoch_, std::min(dataset_size_, start_ + position_ * world_size_)};
}

std::span<const int64_t> DistributedSampler::next(int64_t n) {
  if (n < 0) {
    throw ValueError(detail::concat("DistributedSampler::next: n is ", n, ", expected >= 0"));
  }
  const int64_t count = std::min(n, std::ssize(indices_) - position_);
  std::span<const int64_t> out(indices_.data() + position_, static_cast<size_t>(count));
  position_ += count;
  return out;
}

}  // namespace tessera::data
