#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "key_index.h"
#include "message.h"
#include "round.h"
#include "shared_segment.h"
#include "tessera/core/serialize.h"
#include "tessera/parallel/ps/tables.h"

// What one server holds of one table, and how pushes reach it. Every public call locks the shard,
// so connection threads serve it concurrently and pushes apply in arrival order. Under BSP a
// push is summed into the round, which applies the workers' mean when the last one arrives; a
// pull of step t waits until step t - 1's round has applied. Under ASP and SSP each push applies
// at once, weighted 1/W like its share of a round's mean.
namespace tessera::parallel::ps {

using Clock = std::chrono::steady_clock;

// Where a pull's reply values go: into the connection's shared segment, after the request, when
// the request came through it and they fit there; else into memory of the connection's own.
class ReplyValues {
 public:
  // `shared`: the segment's bytes after the request, or none.
  void reset(std::span<std::byte> shared) {
    shared_ = shared;
    values_ = {};
    in_shared_ = false;
  }
  std::span<float> take(uint64_t floats);
  [[nodiscard]] std::span<const float> values() const { return values_; }
  [[nodiscard]] bool in_shared() const { return in_shared_; }

 private:
  std::span<std::byte> shared_;
  std::vector<float> heap_;
  std::span<float> values_;
  bool in_shared_ = false;
};

class Shard {
 public:
  Shard(const TableSpec& spec, int workers, bool bsp);
  virtual ~Shard() = default;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  [[nodiscard]] const TableSpec& spec() const { return spec_; }
  // This shard's values, optimizer state and step counts, as a checkpoint holds them; restore()
  // reads them back into a new shard of the same table and server, and throws FormatError
  // (naming `in`'s source) for anything that does not fit it.
  virtual void save(BinaryWriter& out) = 0;
  virtual void restore(BinaryReader& in) = 0;
  // Wakes every waiting pull with this error (a BSP job lost a worker), and refuses what follows.
  void fail(const std::string& why);

 protected:
  // Under BSP, waits until step clock's parameters are complete. Throws TimeoutError naming the
  // workers the round waits for, or CommError after fail().
  void wait_for_step(std::unique_lock<std::mutex>& lock, int64_t clock, Clock::time_point deadline);
  // Counts a BSP push; true when the round is complete and should be applied now.
  bool count_push(uint32_t worker, int64_t clock);
  void finish_round();
  // The BSP round's step in a checkpoint (-1 without one); a round's sum so far is not kept, so
  // the workers push that step again.
  void save_round(BinaryWriter& out) const;
  void restore_round(BinaryReader& in);
  void check_failed() const;

  TableSpec spec_;
  float weight_;  // of one worker's gradient: 1 / workers (apply_update's scale)
  std::mutex mutex_;
  std::optional<Round> round_;  // BSP only

 private:
  std::condition_variable applied_;
  std::string failure_;
};

class DenseShard : public Shard {
 public:
  // `initial` is this server's range of the table's starting values.
  DenseShard(const TableSpec& spec, Range range, std::vector<float> initial, int workers, bool bsp);

  [[nodiscard]] Range range() const { return range_; }
  // Takes the request's count of *out (once the range is checked) and fills it.
  void pull(int64_t clock, const DenseRequest& request, ReplyValues* out,
            Clock::time_point deadline);
  // Waits as pull() does, for a worker that copies the values from segment() itself.
  void wait_readable(int64_t clock, const DenseRequest& request, Clock::time_point deadline);
  // The memory the values live in, for workers on this host to map.
  [[nodiscard]] SegmentInfo segment() const { return segment_.info(); }
  void push(uint32_t worker, int64_t clock, const DenseRequest& request);
  [[nodiscard]] std::vector<float> values();
  void save(BinaryWriter& out) override;
  void restore(BinaryReader& in) override;

 private:
  void check_range(const DenseRequest& request, MessageType type) const;
  void apply(float lr, const float* grad);

  Range range_;
  SharedSegment segment_;
  std::span<float> values_;  // in segment_
  std::vector<float> state_;
  std::vector<float> round_sum_;  // BSP: the workers' gradients so far
  int64_t steps_ = 0;
};

class SparseShard : public Shard {
 public:
  SparseShard(const TableSpec& spec, int workers, bool bsp);

  // Rows of keys.size() * dim values, in the keys' order; unseen keys get new rows.
  void pull(int64_t clock, std::span<const uint64_t> keys, std::span<float> out,
            Clock::time_point deadline);
  void push(uint32_t worker, int64_t clock, const SparseRequest& request);
  [[nodiscard]] int64_t rows();
  void save(BinaryWriter& out) override;
  void restore(BinaryReader& in) override;

 private:
  // Prefetches the row index's slot of the key kPrefetchDistance after keys[k].
  void prefetch(std::span<const uint64_t> keys, size_t k) const;
  int64_t row_of(uint64_t key);
  void apply_row(int64_t row, float lr, const float* grad);
  void clear_round_sums();

  KeyIndex index_;  // key -> row
  std::vector<float> values_;
  std::vector<float> state_;
  std::vector<int64_t> steps_;
  KeyIndex round_keys_;            // BSP: the keys pushed in this round
  std::vector<float> round_sums_;  // BSP: their gradients so far, a row of dim per key
};

}  // namespace tessera::parallel::ps
