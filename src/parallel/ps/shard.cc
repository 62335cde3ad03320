#include "shard.h"

#include <algorithm>

#include "row_optimizer.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A new row's values from (seed, key) alone.
void init_row(const TableSpec& spec, uint64_t key, float* row) {
  uint64_t state = spec.seed ^ (key * 0xd1342543de82ef95ULL);
  for (int64_t i = 0; i < spec.dim; ++i) {
    const double unit = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
    row[i] = static_cast<float>((2.0 * unit - 1.0) * spec.init_scale);
  }
}

void write_floats(BinaryWriter& out, std::span<const float> values) {
  out.write_bytes(std::as_bytes(values));
}

// Reads n floats, refusing a count the rest of the input cannot hold before allocating for it.
std::vector<float> read_floats(BinaryReader& in, uint64_t n, const std::string& what) {
  const std::optional<uint64_t> left = in.remaining();
  if (n > (uint64_t{1} << 40) || (left && n * sizeof(float) > *left)) {
    throw FormatError(
        detail::concat(in.source(), ": ", what, " of ", n, " floats, more than the file holds"));
  }
  std::vector<float> values(static_cast<size_t>(n));
  in.read_bytes(std::as_writable_bytes(std::span(values)));
  return values;
}

void expect(BinaryReader& in, bool ok, const std::string& what) {
  if (!ok) throw FormatError(detail::concat(in.source(), " at byte ", in.offset(), ": ", what));
}

}  // namespace

std::span<float> ReplyValues::take(uint64_t floats) {
  in_shared_ = floats > 0 && floats * sizeof(float) <= shared_.size();
  if (in_shared_) {
    values_ = {reinterpret_cast<float*>(shared_.data()), static_cast<size_t>(floats)};
  } else {
    heap_.resize(static_cast<size_t>(floats));
    values_ = heap_;
  }
  return values_;
}

Shard::Shard(const TableSpec& spec, int workers, bool bsp)
    : spec_(spec), weight_(1.0f / static_cast<float>(workers)) {
  if (bsp) round_.emplace(workers);
}

void Shard::fail(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    failure_ = why;
  }
  applied_.notify_all();
}

void Shard::check_failed() const {
  if (!failure_.empty()) throw comm::CommError(failure_);
}

void Shard::wait_for_step(std::unique_lock<std::mutex>& lock, int64_t clock,
                          Clock::time_point deadline) {
  check_failed();
  if (!round_) return;
  const bool ready = applied_.wait_until(
      lock, deadline, [&] { return round_->version() >= clock || !failure_.empty(); });
  check_failed();
  if (!ready) {
    throw comm::TimeoutError(detail::concat("table ", spec_.id, ": step ", clock,
                                            " waits for the gradients of worker(s) ",
                                            round_->missing(), " for step ", round_->version()));
  }
}

bool Shard::count_push(uint32_t worker, int64_t clock) {
  check_failed();
  return round_->add(worker, clock);
}

void Shard::finish_round() {
  round_->finish();
  applied_.notify_all();
}

void Shard::save_round(BinaryWriter& out) const { out.write_i64(round_ ? round_->version() : -1); }

void Shard::restore_round(BinaryReader& in) {
  const int64_t version = in.read_i64();
  if (version < -1 || version > kMaxClock) {
    throw FormatError(detail::concat(in.source(), ": table ", spec_.id, ": round ", version));
  }
  if (round_) round_->start_at(std::max<int64_t>(version, 0));
}

DenseShard::DenseShard(const TableSpec& spec, Range range, std::vector<float> initial, int workers,
                       bool bsp)
    : Shard(spec, workers, bsp),
      range_(range),
      segment_(SharedSegment::create(static_cast<uint64_t>(range.size()) * sizeof(float))),
      values_(reinterpret_cast<float*>(segment_.bytes().data()),
              static_cast<size_t>(range.size())) {
  TESSERA_CHECK_EQ(static_cast<int64_t>(initial.size()), range.size());
  std::copy(initial.begin(), initial.end(), values_.begin());
  state_.resize(values_.size() * state_slots(spec.optimizer));
  init_state(spec.optimizer, state_.data(), range.size());
  if (bsp) round_sum_.assign(values_.size(), 0.0f);
}

void DenseShard::check_range(const DenseRequest& r, MessageType type) const {
  if (r.offset < range_.begin || r.offset > range_.end || r.count > range_.end - r.offset) {
    // Offset and count as sent: their sum may not fit an int64_t.
    throw ProtocolError(detail::concat(
        to_string(type), " of table ", spec_.id, ": ", r.count, " values from offset ", r.offset,
        " are not within this server's [", range_.begin, ", ", range_.end, ")"));
  }
}

void DenseShard::pull(int64_t clock, const DenseRequest& r, ReplyValues* out,
                      Clock::time_point deadline) {
  check_range(r, MessageType::kPullDense);
  const std::span<float> values = out->take(static_cast<uint64_t>(r.count));
  std::unique_lock lock(mutex_);
  wait_for_step(lock, clock, deadline);
  std::copy_n(values_.begin() + (r.offset - range_.begin), r.count, values.begin());
}

void DenseShard::wait_readable(int64_t clock, const DenseRequest& r, Clock::time_point deadline) {
  check_range(r, MessageType::kPullMapped);
  std::unique_lock lock(mutex_);
  wait_for_step(lock, clock, deadline);
}

void DenseShard::push(uint32_t worker, int64_t clock, const DenseRequest& r) {
  check_range(r, MessageType::kPushDense);
  if (r.count != range_.size()) {
    throw ProtocolError(detail::concat("push_dense of table ", spec_.id, ": ", r.count,
                                       " values, but a push covers this server's whole range of ",
                                       range_.size()));
  }
  std::lock_guard lock(mutex_);
  // Each worker's gradient counts 1/W, as in a round's mean: under ASP and SSP an epoch moves the
  // parameters as far as under BSP.
  if (!round_) return apply(r.lr, r.values.data());
  const bool last = count_push(worker, clock);
  for (size_t i = 0; i < round_sum_.size(); ++i) round_sum_[i] += r.values[i];
  if (!last) return;
  apply(r.lr, round_sum_.data());  // the last push of the round: the workers' mean
  std::fill(round_sum_.begin(), round_sum_.end(), 0.0f);
  finish_round();
}

void DenseShard::apply(float lr, const float* grad) {
  apply_update(spec_.optimizer, lr, ++steps_, values_.data(), state_.data(), grad, range_.size(),
               weight_);
}

std::vector<float> DenseShard::values() {
  std::lock_guard lock(mutex_);
  return {values_.begin(), values_.end()};
}

void DenseShard::save(BinaryWriter& out) {
  std::lock_guard lock(mutex_);
  save_round(out);
  out.write_i64(range_.begin);
  out.write_i64(range_.end);
  out.write_i64(steps_);
  write_floats(out, values_);
  write_floats(out, state_);
}

void DenseShard::restore(BinaryReader& in) {
  std::lock_guard lock(mutex_);
  restore_round(in);
  if (round_) std::fill(round_sum_.begin(), round_sum_.end(), 0.0f);
  const int64_t begin = in.read_i64();
  const int64_t end = in.read_i64();
  expect(in, begin == range_.begin && end == range_.end,
         detail::concat("table ", spec_.id, " holds [", begin, ", ", end, "), this server [",
                        range_.begin, ", ", range_.end, ")"));
  const int64_t steps = in.read_i64();
  expect(in, steps >= 0, detail::concat("table ", spec_.id, ": ", steps, " steps"));
  std::vector<float> values = read_floats(in, values_.size(), "values");
  std::vector<float> state = read_floats(in, state_.size(), "optimizer state");
  steps_ = steps;
  std::copy(values.begin(), values.end(), values_.begin());
  state_ = std::move(state);
}

SparseShard::SparseShard(const TableSpec& spec, int workers, bool bsp)
    : Shard(spec, workers, bsp) {}

void SparseShard::prefetch(std::span<const uint64_t> keys, size_t k) const {
  if (k + KeyIndex::kPrefetchDistance < keys.size()) {
    index_.prefetch(keys[k + KeyIndex::kPrefetchDistance]);
  }
}

int64_t SparseShard::row_of(uint64_t key) {
  const auto [row, created] = index_.find_or_insert(key);
  if (created) {
    const int64_t dim = spec_.dim;
    values_.resize(values_.size() + dim);
    init_row(spec_, key, values_.data() + values_.size() - dim);
    const int64_t slots = dim * state_slots(spec_.optimizer);
    state_.resize(state_.size() + slots);
    init_state(spec_.optimizer, state_.data() + state_.size() - slots, dim);
    steps_.push_back(0);
  }
  return row;
}

void SparseShard::pull(int64_t clock, std::span<const uint64_t> keys, std::span<float> out,
                       Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  wait_for_step(lock, clock, deadline);
  const int64_t dim = spec_.dim;
  for (size_t k = 0; k < keys.size(); ++k) {
    prefetch(keys, k);
    const int64_t row = row_of(keys[k]);
    std::copy_n(values_.begin() + row * dim, dim, out.begin() + static_cast<int64_t>(k) * dim);
  }
}

void SparseShard::apply_row(int64_t row, float lr, const float* grad) {
  const int64_t dim = spec_.dim;
  const int64_t slots = state_slots(spec_.optimizer);
  apply_update(spec_.optimizer, lr, ++steps_[row], values_.data() + row * dim,
               state_.data() + row * dim * slots, grad, dim, weight_);
}

void SparseShard::push(uint32_t worker, int64_t clock, const SparseRequest& r) {
  const int64_t dim = spec_.dim;
  std::lock_guard lock(mutex_);
  if (!round_) {
    for (size_t k = 0; k < r.keys.size(); ++k) {
      prefetch(r.keys, k);
      apply_row(row_of(r.keys[k]), r.lr, r.values.data() + static_cast<int64_t>(k) * dim);
    }
    return;
  }
  const bool complete = count_push(worker, clock);
  for (size_t k = 0; k < r.keys.size(); ++k) {
    const auto [at, fresh] = round_keys_.find_or_insert(r.keys[k]);
    if (fresh) round_sums_.resize(round_sums_.size() + dim, 0.0f);
    float* sum = round_sums_.data() + at * dim;
    const float* g = r.values.data() + static_cast<int64_t>(k) * dim;
    for (int64_t i = 0; i < dim; ++i) sum[i] += g[i];
  }
  if (!complete) return;
  for (int64_t at = 0; at < round_keys_.size(); ++at) {
    apply_row(row_of(round_keys_.key(at)), r.lr, round_sums_.data() + at * dim);
  }
  clear_round_sums();
  finish_round();
}

void SparseShard::clear_round_sums() {
  round_keys_.clear();
  round_sums_.clear();
}

void SparseShard::save(BinaryWriter& out) {
  std::lock_guard lock(mutex_);
  save_round(out);
  out.write_i64(spec_.dim);
  out.write_i64(index_.size());
  for (int64_t row = 0; row < index_.size(); ++row) {
    out.write_u64(index_.key(row));
    out.write_i64(steps_[static_cast<size_t>(row)]);
  }
  write_floats(out, values_);
  write_floats(out, state_);
}

void SparseShard::restore(BinaryReader& in) {
  std::lock_guard lock(mutex_);
  restore_round(in);
  clear_round_sums();
  const int64_t dim = in.read_i64();
  expect(in, dim == spec_.dim,
         detail::concat("table ", spec_.id, " has rows of ", dim, " floats, not ", spec_.dim));
  const int64_t rows = in.read_i64();
  const std::optional<uint64_t> left = in.remaining();
  expect(in, rows >= 0 && (!left || static_cast<uint64_t>(rows) <= *left / 16),
         detail::concat("table ", spec_.id, ": ", rows, " rows, more than the file holds"));
  KeyIndex index;
  std::vector<int64_t> steps(static_cast<size_t>(rows));
  for (int64_t row = 0; row < rows; ++row) {
    const uint64_t key = in.read_u64();
    expect(in, index.find_or_insert(key).inserted,
           detail::concat("table ", spec_.id, ": key ", key, " twice"));
    steps[static_cast<size_t>(row)] = in.read_i64();
    expect(in, steps[static_cast<size_t>(row)] >= 0,
           detail::concat("table ", spec_.id, ": key ", key, " has a negative step count"));
  }
  const auto n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(dim);
  std::vector<float> values = read_floats(in, n, "values");
  std::vector<float> state =
      read_floats(in, n * static_cast<uint64_t>(state_slots(spec_.optimizer)), "optimizer state");
  index_ = std::move(index);
  steps_ = std::move(steps);
  values_ = std::move(values);
  state_ = std::move(state);
}

int64_t SparseShard::rows() {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(steps_.size());
}

}  // namespace tessera::parallel::ps
