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
  // Without drop_last: false deals the order as it is, neither padded nor cut, so rank r gets
  // ceil((N - r) / W) indices and every sample counts exactly once (evaluation). Training ranks
  // need equal counts to step together: keep it true there.
  bool pad = true;
};

// Where the ranks stand in an epoch: its number, and how many positions of the epoch's order
// (see DistributedSampler) all ranks together have consumed. It names a point of the shared
// order, not of one rank's share, so it resumes on any number of ranks.
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
// (seed, epoch) and different epochs give different orders. An epoch is dealt from a start
// position G of that order (0, or where a saved state stands); the N - G positions left are made
// a multiple of W long:
//  - drop_last = false: padded by wrapping around to the order's start (repeatedly if fewer than
//    W are left), so every rank gets ceil((N - G) / W) indices; the padding repeats the first
//    indices of the order, which are then seen twice in that epoch (or more when N < W).
//  - drop_last = true: cut to floor((N - G) / W) * W, so every rank gets floor((N - G) / W)
//    indices and the last (N - G) mod W of the order (different ones each epoch when shuffling)
//    are not seen.
// Rank r takes positions G + r, G + r + W, G + r + 2W, ... of that order, so with a batch of b
// per rank the ranks' k-th batches together are positions [G + kbW, G + (k+1)bW): the same global
// batches whatever W is. Across ranks every sample is seen exactly once per epoch apart from the
// padding or dropping above.
//
// The sampler is also a cursor: next() hands out this rank's indices in order and state() says
// where the ranks stand. Not thread-safe; one per rank (copy it to give a DataLoader its own).
class DistributedSampler {
 public:
  // Throws ValueError when dataset_size < 0, world_size < 1 or rank is outside [0, world_size).
  DistributedSampler(int64_t dataset_size, int rank, int world_size,
                     const SamplerOptions& options = {});

  // Starts epoch `epoch` (>= 0) from its beginning: set_state({epoch, 0}).
  void set_epoch(int64_t epoch);
  [[nodiscard]] int64_t epoch() const { return epoch_; }

  // This rank's indices for the current epoch from its start position, in order.
  [[nodiscard]] std::span<const int64_t> indices() const { return indices_; }
  // Indices per rank in a whole epoch: ceil(N / W), or floor(N / W) with drop_last.
  [[nodiscard]] int64_t num_samples() const { return num_samples_; }
  // Indices per whole epoch over all ranks: num_samples() * world_size().
  [[nodiscard]] int64_t total_size() const { return num_samples_ * world_size_; }

  // The next up to n indices of this epoch (fewer at its end, none after it); advances position.
  [[nodiscard]] std::span<const int64_t> next(int64_t n);
  // How many of indices() have been handed out.
  [[nodiscard]] int64_t position() const { return position_; }

  // The epoch and the order positions consumed, taking every rank to have consumed as many
  // indices as this one (as ranks that train in step have); at most N, which means the epoch is
  // over.
  [[nodiscard]] SamplerState state() const;
  // Deals state.epoch from order position state.position, which may come from a run on another
  // number of ranks. Throws ValueError when the epoch is negative or the position is outside
  // [0, N].
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
  int64_t start_ = 0;  // the order position the epoch was dealt from
  int64_t position_ = 0;
  std::vector<int64_t> indices_;
};

}  // namespace tessera::data
