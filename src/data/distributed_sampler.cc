#include "tessera/data/distributed_sampler.h"

#include <algorithm>
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

void DistributedSampler::set_epoch(int64_t epoch) {
  if (epoch < 0) {
    throw ValueError(
        detail::concat("DistributedSampler::set_epoch: epoch ", epoch, " is negative"));
  }
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options_.shuffle && dataset_size_ > 1) {
    // Every rank seeds the same way, so all compute the same permutation.
    Generator gen(options_.seed + static_cast<uint64_t>(epoch));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(gen.below(static_cast<uint64_t>(i) + 1));
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
    }
  }
  indices_.assign(static_cast<size_t>(num_samples_), 0);
  for (int64_t k = 0; k < num_samples_; ++k) {
    // Position in the padded (wrapped around) or cut order.
    const int64_t global = rank_ + k * world_size_;
    indices_[static_cast<size_t>(k)] = order[static_cast<size_t>(global % dataset_size_)];
  }
  epoch_ = epoch;
  position_ = 0;
}

std::span<const int64_t> DistributedSampler::next(int64_t n) {
  if (n < 0) {
    throw ValueError(detail::concat("DistributedSampler::next: n is ", n, ", expected >= 0"));
  }
  const int64_t count = std::min(n, num_samples_ - position_);
  std::span<const int64_t> out(indices_.data() + position_, static_cast<size_t>(count));
  position_ += count;
  return out;
}

void DistributedSampler::set_state(const SamplerState& state) {
  if (state.position < 0 || state.position > num_samples_) {
    throw ValueError(detail::concat("DistributedSampler::set_state: position ", state.position,
                                    " is outside [0, ", num_samples_,
                                    "] (this rank's samples per epoch: dataset size ",
                                    dataset_size_, ", world size ", world_size_, ")"));
  }
  set_epoch(state.epoch);
  position_ = state.position;
}

}  // namespace tessera::data
