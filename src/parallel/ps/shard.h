#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "key_index.h"
#include "message.h"
#include "round.h"
#include "tessera/core/serialize.h"
#include "tessera/parallel/ps/tables.h"

// What one server holds of one table, and how pushes reach it. Every public call locks the shard,
// so connection threads serve it concurrently and pushes apply in arrival order. Under BSP a
// push is summed into the round, which applies the workers' mean when the last one arrives; a
// pull of step t waits until step t - 1's round has applied. Under ASP and SSP each push applies
// at once, weighted 1/W like its share of a round's mean.
namespace tessera::parallel::ps {

using Clock = std::chrono::steady_clock;

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
  // Resizes *out to the request's count (once the range is checked) and fills it.
  void pull(int64_t clock, const DenseRequest& request, std::vector<float>* out,
            Clock::time_point deadline);
  void push(uint32_t worker, int64_t clock, const DenseRequest& request);
  [[nodiscard]] std::vector<float> values();
  void save(BinaryWriter& out) override;
  void restore(BinaryReader& in) override;

 private:
  void check_range(const DenseRequest& request, MessageType type) const;
  void apply(float lr, const float* grad);

  Range range_;
  std::vector<float> values_;
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
  int64_t row_of(uint64_t key);
  void apply_row(int64_t row, float lr, const float* grad);

  KeyIndex index_;  // key -> row
  std::vector<float> values_;
  std::vector<float> state_;
  std::vector<int64_t> steps_;
  std::unordered_map<uint64_t, std::vector<float>> round_sum_;  // BSP: per key
};

}  // namespace tessera::parallel::ps
