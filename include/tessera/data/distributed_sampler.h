#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tessera::data {

struct SamplerOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  // false: pad so every rank gets ceil(N / W) indices; true: every rank gets floor(N / W).
  bool drop_last = false;
};

// Where a sampler stands: the epoch, and how many of this rank's indices for that epoch have
// been consumed. Saved in checkpoints; restoring it continues mid-epoch exactly (with the same
// dataset size, world size and seed).
struct SamplerState {
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const SamplerState&) const = default;
};

// Splits the indices 0 .. N-1 of a dataset among world_size ranks, as PyTorch's
// DistributedSampler does.
//
// Each epoch, every rank computes the same order: 0 .. N-1, shuffled (when shuffle is set) by
// Fisher-Yates with a tessera::Generator seeded by seed + epoch, so it depends only on
// (seed, epoch) and different epochs give different orders. The order is then made a multiple
// of W long:
//  - drop_last = false: padded by wrapping around to its start (repeatedly if N < W), so every
//    rank gets ceil(N / W) indices; the ceil(N / W) * W - N padding entries repeat the first
//    indices of the order, which are then seen twice in that epoch (or more when N < W).
//  - drop_last = true: cut to floor(N / W) * W, so every rank gets floor(N / W) indices and the
//    last N mod W indices of the order (different ones each epoch when shuffling) are not seen.
// Rank r takes positions r, r + W, r + 2W, ... of that order. Across ranks every sample is seen
// exactly once per epoch apart from the padding or dropping above.
//
// The sampler is also a cursor: next() hands out this rank's indices in order and state() says
// where it stands. Not thread-safe; one per rank (copy it to give a DataLoader its own).
class DistributedSampler {
 public:
  // Throws ValueError when dataset_size < 0, world_size < 1 or rank is outside [0, world_size).
  DistributedSampler(int64_t dataset_size, int rank, int world_size,
                     const SamplerOptions& options = {});

  // Starts epoch `epoch` (>= 0) from its beginning: recomputes the order, position 0.
  void set_epoch(int64_t epoch);
  [[nodiscard]] int64_t epoch() const { return epoch_; }

  // This rank's indices for the current epoch, in order.
  [[nodiscard]] std::span<const int64_t> indices() const { return indices_; }
  // Indices per rank per epoch: ceil(N / W) or floor(N / W) with drop_last.
  [[nodiscard]] int64_t num_samples() const { return num_samples_; }
  // Indices per epoch over all ranks: num_samples() * world_size().
  [[nodiscard]] int64_t total_size() const { return num_samples_ * world_size_; }

  // The next up to n indices of this epoch (fewer at its end, none after it); advances position.
  [[nodiscard]] std::span<const int64_t> next(int64_t n);
  // How many of this epoch's indices have been handed out.
  [[nodiscard]] int64_t position() const { return position_; }

  [[nodiscard]] SamplerState state() const { return {epoch_, position_}; }
  // Moves to state.epoch and state.position. Throws ValueError when the epoch is negative or
  // the position is outside [0, num_samples()].
  void set_state(const SamplerState& state);

  [[nodiscard]] int64_t dataset_size() const { return dataset_size_; }
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int world_size() const { return world_size_; }
  [[nodiscard]] const SamplerOptions& options() const { return options_; }

 private:
  int64_t dataset_size_;
  int rank_;
  int world_size_;
  SamplerOptions options_;
  int64_t num_samples_ = 0;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  std::vector<int64_t> indices_;
};

}  // namespace tessera::data
