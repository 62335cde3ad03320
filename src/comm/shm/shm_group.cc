#include "shm_group.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <random>
#include <thread>
#include <utility>

#include "group_setup.h"
#include "p2p_engine.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace shm {
namespace {

using Clock = std::chrono::steady_clock;

// A waiting rank spins this long, then calls sched_yield between looks (about a microsecond when
// no other thread wants the CPU, and it lets a rank that shares the core run) for this long,
// then sleeps on the futex of a rank it waits for. Measured with two ranks on two cores, 4 x 200
// allreduces of 4 MiB per run (perf stat): a 5 us spin, 18-22k context switches and 4.6-7.0
// GB/s per run; 50 us, 4.2-5.5k and 5.0-7.4 GB/s.
constexpr auto kSpinTime = std::chrono::microseconds(50);
// See allreduce_pooled.
constexpr std::size_t kPooledBlockBytes = std::size_t{32} << 10;
constexpr auto kYieldTime = std::chrono::microseconds(1000);
// Longest futex sleep: bounds how late a wait notices its deadline or a peer that failed.
constexpr auto kMaxSleep = std::chrono::microseconds(10000);
// How often a sleeping wait checks that the processes it waits for still exist.
constexpr auto kPidCheckInterval = std::chrono::milliseconds(100);

long long to_ms(Clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
}

// Group names may hold '/' and ':' (sub-groups): not in a file name.
std::string file_name_part(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  return out.substr(0, 120);
}

// a[i] += b[i], also into copy[i]: one pass over the data instead of two.
template <typename T>
void sum_to_both(T* __restrict a, T* __restrict copy, const T* __restrict b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = a[i] + b[i];
    a[i] = v;
    copy[i] = v;
  }
}

// a[i] and b[i] both become a[i] + b[i]: two ranks' buffers, reduced in one pass.
template <typename T>
void sum_into_both(T* __restrict a, T* __restrict b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = a[i] + b[i];
    a[i] = v;
    b[i] = v;
  }
}

std::string random_hex() {
  std::random_device device;
  std::uniform_int_distribution<std::uint64_t> dist;
  const std::uint64_t value = dist(device);
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

bool process_exited(std::int32_t pid) {
  if (pid <= 0 || pid == ::getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

// Slices of a chunk of `n` elements among `ranks`: whole cache lines each (so no two ranks write
// one line), the last ones shorter or empty.
struct Slices {
  Slices(std::size_t n, int ranks, std::size_t esz) : n_(n) {
    const std::size_t line = std::max<std::size_t>(kCacheLine / esz, 1);
    per_ = ceil_div(ceil_div(n, static_cast<std::size_t>(ranks)), line) * line;
  }
  [[nodiscard]] std::size_t begin(int j) const {
    return std::min(static_cast<std::size_t>(j) * per_, n_);
  }
  [[nodiscard]] std::size_t size(int j) const { return std::min(begin(j) + per_, n_) - begin(j); }

 private:
  std::size_t n_;
  std::size_t per_ = 0;
};

}  // namespace

ShmGroup::ShmGroup(Setup setup)
    : ProcessGroup(setup.rank, setup.size, std::move(setup.options)),
      store_(std::move(setup.store)),
      key_prefix_(std::move(setup.key_prefix)),
      shm_options_(std::move(setup.shm)),
      layout_(setup.size, shm_options_.slot_bytes, shm_options_.pool_bytes) {
  join(Clock::now() + options().timeout);
  if (layout_.pool_bytes() > 0) {
    pool_ =
        std::make_unique<BufferPool>(segment_, layout_.pool_offset(rank()), layout_.pool_bytes());
  }
  worker_ = std::make_shared<OpWorker>("tessera-shm");
}

ShmGroup::~ShmGroup() { shutdown_noexcept(); }

void ShmGroup::join(Clock::time_point deadline) {
  const auto start = Clock::now();
  const std::string where =
      detail::concat("rendezvous of shared-memory group ", name(), " (rank ", rank(), " of ",
                     size(), ") through the ", store_->description());
  const std::string key = key_prefix_ + "/shm/segment";
  auto remaining = [&] {
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()),
                    std::chrono::milliseconds(1));
  };
  if (rank() == 0) {
    const std::string segment_name = detail::concat(shm_options_.segment_name_prefix, "-",
                                                    random_hex(), "-", file_name_part(name()));
    segment_ = Segment::create(segment_name, layout_.total_bytes(), layout_.hot_bytes());
    base_ = segment_->base();
    SegmentHeader* header = layout_.header(base_);
    header->magic = kSegmentMagic;
    header->version = kSegmentVersion;
    header->size = size();
    header->slot_bytes = layout_.slot_bytes();
    header->ring_bytes = layout_.ring_bytes();
    header->pool_bytes = layout_.pool_bytes();
    header->total_bytes = layout_.total_bytes();
    // The store's lock orders these writes before any rank that reads the name maps the segment.
    store_->set(key, segment_name);
  } else {
    std::string segment_name;
    try {
      segment_name = store_->get(key, remaining());
    } catch (const TimeoutError&) {
      throw TimeoutError(detail::concat(where, ": rank 0 did not create the segment within ",
                                        to_ms(Clock::now() - start), " ms"));
    }
    segment_ = Segment::open(segment_name, layout_.total_bytes(), layout_.hot_bytes());
    base_ = segment_->base();
    check_header(where, segment_name);
  }
  RankBlock* mine = block(rank());
  mine->pid = static_cast<std::int32_t>(::getpid());
  shared(mine->state)
      .store(static_cast<std::uint32_t>(RankState::kRunning), std::memory_order_release);
  // Every rank waits for all to map the segment, so all fail alike when one never comes.
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int r = 0; r < size(); ++r) {
      if (shared(block(r)->state).load(std::memory_order_acquire) ==
          static_cast<std::uint32_t>(RankState::kJoining)) {
        missing.push_back(r);
      }
    }
    if (missing.empty()) break;
    if (Clock::now() >= deadline) {
      throw TimeoutError(detail::concat(where, ": ", rank_list(missing),
                                        " did not map the segment within ",
                                        to_ms(Clock::now() - start), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (rank() == 0) {
    // Everyone has it mapped: from now on nothing of the group is left in /dev/shm, whatever
    // happens to the ranks. The key goes too, so a later group of this name starts afresh.
    segment_->unlink();
    store_->remove(key);
  }
}

void ShmGroup::check_header(const std::string& where, const std::string& segment_name) const {
  const SegmentHeader* header = layout_.header(base_);
  if (header->magic != kSegmentMagic || header->version != kSegmentVersion) {
    throw CommError(detail::concat(where, ": segment /dev/shm/", segment_name,
                                   " is not a tessera shared-memory segment of version ",
                                   kSegmentVersion, " (magic ", header->magic, ", version ",
                                   header->version, ")"));
  }
  if (header->size != size() || header->slot_bytes != layout_.slot_bytes() ||
      header->ring_bytes != layout_.ring_bytes() || header->pool_bytes != layout_.pool_bytes() ||
      header->total_bytes != layout_.total_bytes()) {
    throw CommError(detail::concat(
        where, ": segment /dev/shm/", segment_name, " is for ", header->size, " ranks with ",
        header->slot_bytes, "-byte slots, ", header->ring_bytes, "-byte rings and ",
        header->pool_bytes, "-byte pools in ", header->total_bytes, " bytes; this rank expects ",
        size(), ", ", layout_.slot_bytes(), ", ", layout_.ring_bytes(), " and ",
        layout_.pool_bytes(), " in ", layout_.total_bytes()));
  }
}

void ShmGroup::do_shutdown() {
  // Operations already issued run to completion (each within its deadline) first.
  if (worker_) worker_->stop();
  if (p2p_) p2p_->stop();
  if (base_ != nullptr) {
    RankBlock* mine = block(rank());
    auto state = shared(mine->state);
    if (state.load() == static_cast<std::uint32_t>(RankState::kRunning)) {
      state.store(static_cast<std::uint32_t>(RankState::kClosed));
    }
    // Ranks asleep waiting for this one wake up and see it left.
    futex_wake_all(low_word(&mine->progress));
  }
  pool_.reset();  // buffers still allocated keep the segment mapped
  segment_.reset();
  base_ = nullptr;
}

std::shared_ptr<std::byte[]> ShmGroup::do_allocate(std::size_t bytes) {
  return pool_ ? pool_->allocate(bytes) : nullptr;
}

void ShmGroup::publish_failure(RankState state, const std::string& reason) noexcept {
  RankBlock* mine = block(rank());
  auto current = shared(mine->state);
  if (current.load() != static_cast<std::uint32_t>(RankState::kRunning)) return;
  const std::size_t n = std::min(reason.size(), kReasonBytes - 1);
  std::memcpy(mine->reason, reason.data(), n);
  mine->reason[n] = '\0';
  current.store(static_cast<std::uint32_t>(state));  // seq_cst: after the text, before the wake
  futex_wake_all(low_word(&mine->progress));
}

std::shared_ptr<Work> ShmGroup::enqueue(const CallSignature& call, Body body) {
  const std::uint64_t seq = ++seq_;
  auto work = std::make_shared<AsyncWork>(describe_op(call.kind, seq, name()));
  post_work(
      worker_, work,
      [this, seq, call, body = std::move(body), work] { run(seq, call, body, *work); },
      options().timeout);
  return work;
}

void ShmGroup::run(std::uint64_t seq, const CallSignature& call, const Body& body,
                   AsyncWork& work) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work.fail(std::make_exception_ptr(CommError(detail::concat(
        describe_op(call.kind, seq, name()), ": not run: the group failed earlier: ", reason))));
    return;
  }
  Op op;
  op.seq = seq;
  op.call = call;
  op.start = Clock::now();
  op.deadline = op.start + options().timeout;
  op.entry_step = step_;
  // Our record of the collective, read by the others when they meet us in it.
  RankBlock* mine = block(rank());
  OpRecord& record = mine->records[seq % kOpRecords];
  const CallSignature::Wire wire = call.encode();
  shared(record.seq).store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(record.signature, wire.data(), wire.size());
  shared(record.seq).store(seq, std::memory_order_release);
  try {
    body(op);
    shared(mine->completed).store(seq, std::memory_order_relaxed);
    work.complete();
  } catch (const CollectiveMismatchError& e) {
    fail(RankState::kMismatch, e.what(), std::current_exception(), work);
  } catch (const TimeoutError& e) {
    fail(RankState::kTimedOut, e.what(), std::current_exception(), work);
  } catch (const Error& e) {
    fail(RankState::kFailed, e.what(), std::current_exception(), work);
  } catch (const std::exception& e) {
    const std::string message = detail::concat(describe_op(call.kind, seq, name()), ": ", e.what());
    fail(RankState::kFailed, message, std::make_exception_ptr(CommError(message)), work);
  }
}

void ShmGroup::fail(RankState state, const std::string& message, std::exception_ptr error,
                    AsyncWork& work) {
  failure_.record(message);
  publish_failure(state, message);
  work.fail(std::move(error));
}

void ShmGroup::publish() {
  ++step_;
  RankBlock* mine = block(rank());
  // seq_cst: the store must be visible before we read `sleepers` (a waiter increments sleepers,
  // then re-reads progress: one of the two sides sees the other).
  shared(mine->progress).store(step_, std::memory_order_seq_cst);
  if (shared(layout_.header(base_)->sleepers).load(std::memory_order_seq_cst) > 0) {
    futex_wake_all(low_word(&mine->progress));
  }
}

bool ShmGroup::read_record(int r, std::uint64_t seq, CallSignature* call) const {
  OpRecord& record = block(r)->records[seq % kOpRecords];
  auto stored = shared(record.seq);
  if (stored.load(std::memory_order_acquire) != seq) return false;
  CallSignature::Wire wire;
  std::memcpy(wire.data(), record.signature, wire.size());
  std::atomic_thread_fence(std::memory_order_acquire);
  if (stored.load(std::memory_order_relaxed) != seq) return false;  // rewritten meanwhile
  *call = CallSignature::decode(wire.data());
  return true;
}

void ShmGroup::check_signature(int r, const Op& op) const {
  CallSignature theirs;
  if (!read_record(r, op.seq, &theirs)) {
    // Overwritten: the rank has gone on to later collectives, so it ran this one with us.
    const std::uint64_t entered = latest_record(r);
    if (entered > op.seq) return;
    throw CollectiveMismatchError(detail::concat(
        describe_op(op.call.kind, op.seq, name()), ": collectives differ across ranks: rank ", r,
        " reached this step in another collective (#", entered, ") than rank ", rank(), " (#",
        op.seq, ")"));
  }
  if (theirs == op.call) return;
  throw CollectiveMismatchError(detail::concat(
      describe_op(op.call.kind, op.seq, name()), ": collectives differ across ranks: rank ", r,
      " issued ", theirs.describe(), " as collective #", op.seq, " where rank ", rank(), " issued ",
      op.call.describe()));
}

std::uint64_t ShmGroup::latest_record(int r) const {
  std::uint64_t entered = 0;
  for (OpRecord& record : block(r)->records) {
    entered = std::max(entered, shared(record.seq).load(std::memory_order_acquire));
  }
  return entered;
}

std::string ShmGroup::describe_rank(int r) const {
  RankBlock* b = block(r);
  const std::uint64_t entered = latest_record(r);
  const std::uint64_t completed = shared(b->completed).load(std::memory_order_relaxed);
  if (entered == 0) return detail::concat("rank ", r, " has entered no collective yet");
  CallSignature last;
  std::string call;
  if (read_record(r, entered, &last)) call.append(" ").append(last.describe());
  if (completed >= entered) {
    return detail::concat("rank ", r, " last completed #", entered, call);
  }
  return detail::concat("rank ", r, " is in #", entered, call, " (last completed #", completed,
                        ")");
}

void ShmGroup::check_peers(const std::vector<int>& pending, const Op& op, bool check_pids) const {
  for (int r : pending) {
    RankBlock* b = block(r);
    const std::uint32_t raw = shared(b->state).load(std::memory_order_acquire);
    const std::string op_name = describe_op(op.call.kind, op.seq, name());
    if (raw > static_cast<std::uint32_t>(RankState::kMismatch)) {
      throw CommError(detail::concat(op_name, ": the segment is corrupt: rank ", r, "'s state ",
                                     raw, " is no rank state"));
    }
    switch (static_cast<RankState>(raw)) {
      case RankState::kJoining:
      case RankState::kRunning:
        break;
      case RankState::kTimedOut:
        throw TimeoutError(detail::concat(op_name, ": rank ", r, " timed out: ", reason_of(r)));
      case RankState::kMismatch:
        throw CollectiveMismatchError(
            detail::concat(op_name, ": rank ", r, " failed: ", reason_of(r)));
      case RankState::kFailed:
        throw CommError(detail::concat(op_name, ": rank ", r, " failed: ", reason_of(r)));
      case RankState::kClosed:
        throw CommError(
            detail::concat(op_name, ": rank ", r, " has shut its group down; ", describe_rank(r)));
    }
    if (check_pids && process_exited(b->pid)) {
      throw CommError(detail::concat(op_name, ": rank ", r, " (pid ", b->pid,
                                     ") exited without shutting its group down; ",
                                     describe_rank(r)));
    }
  }
}

std::string ShmGroup::reason_of(int r) const {
  const char* text = block(r)->reason;
  return std::string(text, ::strnlen(text, kReasonBytes));
}

void ShmGroup::throw_stuck(const std::vector<int>& pending, std::uint64_t target, const Op& op,
                           Clock::time_point wait_start) const {
  (void)target;
  const auto now = Clock::now();
  std::string detail_text;
  for (int r : pending) detail_text += "; " + describe_rank(r);
  throw TimeoutError(detail::concat(
      describe_op(op.call.kind, op.seq, name()), ": ", rank_list(pending),
      " did not arrive within ", to_ms(now - op.start), " ms (timeout ", options().timeout.count(),
      " ms; this step waited ", to_ms(now - wait_start), " ms)", detail_text));
}

void ShmGroup::wait_for(std::uint64_t target, int only, Op& op) {
  if (only < 0 && all_reached_ >= target) return;
  // Ranks that reached a step of this collective have entered it: compare their call with ours
  // (once per collective). Steps of earlier collectives (slot reuse) say nothing about this one.
  const bool check = !op.met && target > op.entry_step;
  if (check) op.met = true;
  // Fast path: everyone is there already.
  std::vector<int> pending;
  auto reached = [&](int r) {
    return shared(block(r)->progress).load(std::memory_order_acquire) >= target;
  };
  for (int r = 0; r < size(); ++r) {
    if (r == rank() || (only >= 0 && r != only)) continue;
    if (reached(r)) {
      if (check) check_signature(r, op);
    } else {
      pending.push_back(r);
    }
  }
  if (!pending.empty()) {
    const auto wait_start = Clock::now();
    auto next_pid_check = wait_start + kPidCheckInterval;
    auto* sleepers = &layout_.header(base_)->sleepers;
    for (std::uint32_t spins = 1;; ++spins) {
      std::erase_if(pending, [&](int r) {
        if (!reached(r)) return false;
        if (check) check_signature(r, op);
        return true;
      });
      if (pending.empty()) break;
      if (spins % 64 != 0) {
        cpu_relax();
        continue;
      }
      const auto now = Clock::now();
      const bool check_pids = now >= next_pid_check;
      if (check_pids) next_pid_check = now + kPidCheckInterval;
      check_peers(pending, op, check_pids);
      if (now >= op.deadline) throw_stuck(pending, target, op, wait_start);
      const auto waited = now - wait_start;
      if (waited < kSpinTime) {
        cpu_relax();
      } else if (waited < kYieldTime) {
        ::sched_yield();
      } else {
        // Sleep on the first laggard's progress word until it moves (or a bounded while).
        std::uint64_t* word = &block(pending.front())->progress;
        shared(*sleepers).fetch_add(1);
        const std::uint64_t seen = shared(*word).load();
        if (seen < target) {
          const auto left =
              std::chrono::duration_cast<std::chrono::microseconds>(op.deadline - now);
          futex_wait(low_word(word), static_cast<std::uint32_t>(seen),
                     std::clamp(left, std::chrono::microseconds(1), kMaxSleep));
        }
        shared(*sleepers).fetch_sub(1);
      }
    }
  }
  if (only < 0) all_reached_ = std::max(all_reached_, target);
}

int ShmGroup::take_slot(Op& op) {
  const int b = skip_slot();
  if (slot_free_at_[b] > all_reached_) wait_for(slot_free_at_[b], -1, op);
  return b;
}

void ShmGroup::arrive(Op& o) {
  publish();
  wait_all(o);
}

// Reduce-scatter then allgather through the slots, one chunk (a slot's worth) at a time. Each
// chunk is cut into `size` slices; after posting chunk 0 every step is
//   reduce slice `rank` of chunk k (own data + that slice of every other rank's slot) into the
//   caller's buffer and into this rank's slot; post chunk k + 1 (copy its slices j != rank into
//   a fresh slot); publish; wait for all; copy every other rank's reduced slice of chunk k out.
// One wait per chunk: a slot is refilled three chunks later, once every rank has published the
// step after it read the slot.
void ShmGroup::allreduce_chunks(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                                int root, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  const ReduceFunction fn = reduce_function(dtype, op);
  const std::size_t chunk = layout_.slot_bytes() / esz;
  const std::size_t chunks = ceil_div(count, chunk);
  auto chunk_data = [&](std::size_t k) { return data + k * chunk * esz; };
  auto chunk_slices = [&](std::size_t k) {
    return Slices(std::min(chunk, count - k * chunk), n, esz);
  };
  // Copies this rank's part of chunk k (every slice but its own) into a fresh slot.
  auto post = [&](std::size_t k) {
    const int b = take_slot(o);
    const Slices slices = chunk_slices(k);
    for (int j = 0; j < n; ++j) {
      if (j == r || slices.size(j) == 0) continue;
      const std::size_t at = slices.begin(j) * esz;
      std::memcpy(slot(r, b) + at, chunk_data(k) + at, slices.size(j) * esz);
    }
    return b;
  };
  int b = post(0);
  publish();
  wait_all(o);
  for (std::size_t k = 0; k < chunks; ++k) {
    const Slices slices = chunk_slices(k);
    std::byte* base = chunk_data(k);
    if (const std::size_t mine = slices.size(r); mine > 0) {
      const std::size_t at = slices.begin(r) * esz;
      reduce_slice(base + at, slot(r, b) + at, b, at, mine, dtype, op, fn);
    }
    const int next = k + 1 < chunks ? post(k + 1) : -1;
    publish();
    wait_all(o);
    for (int j = 0; j < n && (root < 0 || r == root); ++j) {
      if (j == r || slices.size(j) == 0) continue;
      const std::size_t at = slices.begin(j) * esz;
      std::memcpy(base + at, slot(j, b) + at, slices.size(j) * esz);
    }
    // Every rank has read slot b of the others once it publishes its next step.
    slot_free_at_[b] = step_ + 1;
    b = next;
  }
  publish();
}

// Two steps, whatever the size: after the first (every rank's buffer is ready and its offset
// known) each rank reads its slice of every buffer and writes the reduction into every buffer;
// after the second every rank is done with the others' buffers. Each slice is reduced once, so
// every rank gets the same bits.
void ShmGroup::allreduce_pooled(std::byte* data, std::size_t count, DataType dtype, ReduceOp op,
                                const std::vector<std::uint64_t>& offsets, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  std::vector<std::byte*> buffers(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) {
    buffers[static_cast<std::size_t>(j)] =
        j == r ? data : base_ + layout_.pool_offset(j) + offsets[static_cast<std::size_t>(j)];
  }
  const ReduceFunction fn = reduce_function(dtype, op);
  const Slices slices(count, n, esz);
  const std::size_t end = slices.begin(r) + slices.size(r);
  // Blocks small enough that the reduced block is still in L1/L2 when it is copied out.
  const std::size_t block_count = std::max<std::size_t>(kPooledBlockBytes / esz, 1);
  for (std::size_t at = slices.begin(r); at < end; at += block_count) {
    const std::size_t len = std::min(block_count, end - at);
    std::byte* out = data + at * esz;
    if (n == 2 && op == ReduceOp::kSum && dtype == DataType::kFloat32) {
      sum_into_both(reinterpret_cast<float*>(out),
                    reinterpret_cast<float*>(buffers[static_cast<std::size_t>(1 - r)] + at * esz),
                    len);
      continue;
    }
    for (int j = 0; j < n; ++j) {
      if (j != r) fn(out, out, buffers[static_cast<std::size_t>(j)] + at * esz, len);
    }
    if (op == ReduceOp::kAvg) divide_in_place(out, len, dtype, n);
    for (int j = 0; j < n; ++j) {
      if (j != r) std::memcpy(buffers[static_cast<std::size_t>(j)] + at * esz, out, len * esz);
    }
  }
  publish();
  wait_all(o);
}

// dst (this rank's slice in the caller's buffer) and out (the same slice of this rank's slot)
// get dst reduced with slice `at` of every other rank's slot `b`.
void ShmGroup::reduce_slice(std::byte* dst, std::byte* out, int b, std::size_t at,
                            std::size_t count, DataType dtype, ReduceOp op, ReduceFunction fn) {
  const int n = size();
  int last = n - 1;
  if (last == rank()) --last;
  for (int j = 0; j < last; ++j) {
    if (j != rank()) fn(dst, dst, slot(j, b) + at, count);
  }
  // The common case in one pass: the last sum goes to both outputs.
  if (op == ReduceOp::kSum && dtype == DataType::kFloat32) {
    return sum_to_both(reinterpret_cast<float*>(dst), reinterpret_cast<float*>(out),
                       reinterpret_cast<const float*>(slot(last, b) + at), count);
  }
  if (op == ReduceOp::kSum && dtype == DataType::kFloat64) {
    return sum_to_both(reinterpret_cast<double*>(dst), reinterpret_cast<double*>(out),
                       reinterpret_cast<const double*>(slot(last, b) + at), count);
  }
  fn(dst, dst, slot(last, b) + at, count);
  if (op == ReduceOp::kAvg) divide_in_place(dst, count, dtype, n);
  std::memcpy(out, dst, count * data_type_size(dtype));
}

void ShmGroup::broadcast_chunks(std::byte* data, std::size_t bytes, int root, Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  for (std::size_t off = 0; off < bytes; off += chunk) {
    const std::size_t len = std::min(chunk, bytes - off);
    const int b = rank() == root ? take_slot(o) : skip_slot();
    if (rank() == root) {
      std::memcpy(slot(root, b), data + off, len);
      publish();
    } else {
      publish();
      wait_for(step_, root, o);
      std::memcpy(data + off, slot(root, b), len);
    }
    publish();
    if (rank() == root) release_slot(b);
  }
}

// Chunk k carries bytes [k * slot, (k + 1) * slot) of every rank's block; blocks may differ in
// length (allgatherv), the chunk count follows the longest.
void ShmGroup::allgatherv_chunks(const std::byte* in, std::byte* out,
                                 const std::vector<std::size_t>& block_bytes, Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  const int r = rank();
  std::vector<std::size_t> offsets(block_bytes.size());
  std::size_t longest = 0;
  for (std::size_t j = 0, at = 0; j < block_bytes.size(); ++j) {
    offsets[j] = at;
    at += block_bytes[j];
    longest = std::max(longest, block_bytes[j]);
  }
  const auto ru = static_cast<std::size_t>(r);
  std::byte* own_out = out + offsets[ru];
  if (in != own_out && block_bytes[ru] > 0) std::memmove(own_out, in, block_bytes[ru]);
  for (std::size_t off = 0; off < longest; off += chunk) {
    auto part = [&](std::size_t j) {
      return block_bytes[j] > off ? std::min(chunk, block_bytes[j] - off) : std::size_t{0};
    };
    const int b = take_slot(o);
    // From our own block of `out`: `in` may be that block (in place), and it is filled above.
    if (const std::size_t len = part(ru); len > 0) std::memcpy(slot(r, b), own_out + off, len);
    publish();
    wait_all(o);
    for (int j = 0; j < size(); ++j) {
      const auto ju = static_cast<std::size_t>(j);
      if (j == r) continue;
      if (const std::size_t len = part(ju); len > 0) {
        std::memcpy(out + offsets[ju] + off, slot(j, b), len);
      }
    }
    publish();
    release_slot(b);
  }
}

// Chunk k carries elements [k * sub, (k + 1) * sub) of every block of `in`: this rank's slot
// holds one sub-block per destination rank, and each rank reduces the sub-blocks addressed to it.
void ShmGroup::reduce_scatter_chunks(const std::byte* in, std::byte* out, std::size_t recv_count,
                                     DataType dtype, ReduceOp op, Op& o) {
  const std::size_t esz = data_type_size(dtype);
  const int n = size();
  const int r = rank();
  const ReduceFunction fn = reduce_function(dtype, op);
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = recv_count * esz;
  for (std::size_t off = 0; off < recv_count; off += sub) {
    const std::size_t len = std::min(sub, recv_count - off);
    const int b = take_slot(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                  in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
    }
    publish();
    wait_all(o);
    std::byte* dst = out + off * esz;
    const std::byte* mine = in + static_cast<std::size_t>(r) * block + off * esz;
    bool first = true;
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      fn(dst, first ? mine : dst, slot(j, b) + static_cast<std::size_t>(r) * sub_bytes, len);
      first = false;
    }
    if (first) std::memcpy(dst, mine, len * esz);
    if (op == ReduceOp::kAvg) divide_in_place(dst, len, dtype, n);
    publish();
    release_slot(b);
  }
}

void ShmGroup::gather_chunks(const std::byte* in, std::byte* out, std::size_t bytes, int root,
                             Op& o) {
  const std::size_t chunk = layout_.slot_bytes();
  const int r = rank();
  if (r == root) std::memmove(out + static_cast<std::size_t>(r) * bytes, in, bytes);
  for (std::size_t off = 0; off < bytes; off += chunk) {
    const std::size_t len = std::min(chunk, bytes - off);
    if (r != root) {
      const int b = take_slot(o);
      std::memcpy(slot(r, b), in + off, len);
      publish();
      publish();
      release_slot(b);
      continue;
    }
    const int b = skip_slot();
    publish();
    wait_all(o);
    for (int j = 0; j < size(); ++j) {
      if (j != r) std::memcpy(out + static_cast<std::size_t>(j) * bytes + off, slot(j, b), len);
    }
    publish();
  }
}

void ShmGroup::scatter_chunks(const std::byte* in, std::byte* out, std::size_t count,
                              std::size_t esz, int root, Op& o) {
  const int n = size();
  const int r = rank();
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = count * esz;
  if (r == root) std::memmove(out, in + static_cast<std::size_t>(r) * block, block);
  for (std::size_t off = 0; off < count; off += sub) {
    const std::size_t len = std::min(sub, count - off);
    if (r == root) {
      const int b = take_slot(o);
      for (int j = 0; j < n; ++j) {
        if (j == r) continue;
        std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                    in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
      }
      publish();
      publish();
      release_slot(b);
      continue;
    }
    const int b = skip_slot();
    publish();
    wait_for(step_, root, o);
    std::memcpy(out + off * esz, slot(root, b) + static_cast<std::size_t>(r) * sub_bytes,
                len * esz);
    publish();
  }
}

void ShmGroup::alltoall_chunks(const std::byte* in, std::byte* out, std::size_t count,
                               std::size_t esz, Op& o) {
  const int n = size();
  const int r = rank();
  const std::size_t sub_bytes =
      layout_.slot_bytes() / static_cast<std::size_t>(n) / kCacheLine * kCacheLine;
  const std::size_t sub = sub_bytes / esz;
  const std::size_t block = count * esz;
  const auto ru = static_cast<std::size_t>(r);
  std::memmove(out + ru * block, in + ru * block, block);
  for (std::size_t off = 0; off < count; off += sub) {
    const std::size_t len = std::min(sub, count - off);
    const int b = take_slot(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(slot(r, b) + static_cast<std::size_t>(j) * sub_bytes,
                  in + static_cast<std::size_t>(j) * block + off * esz, len * esz);
    }
    publish();
    wait_all(o);
    for (int j = 0; j < n; ++j) {
      if (j == r) continue;
      std::memcpy(out + static_cast<std::size_t>(j) * block + off * esz,
                  slot(j, b) + ru * sub_bytes, len * esz);
    }
    publish();
    release_slot(b);
  }
}

std::shared_ptr<Work> ShmGroup::do_allreduce(void* data, std::size_t count, DataType dtype,
                                             ReduceOp op) {
  const CallSignature call{.kind = OpKind::kAllreduce, .dtype = dtype, .op = op, .count = count};
  return enqueue(call, [this, data, count, dtype, op](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    auto* bytes = static_cast<std::byte*>(data);
    if (pool_) {
      // A first step in which the ranks learn where each other's buffers are.
      shared(block(rank())->buffer_offset)
          .store(pool_->offset_of(data, count * data_type_size(dtype)), std::memory_order_relaxed);
      arrive(o);
      std::vector<std::uint64_t> offsets(static_cast<std::size_t>(size()));
      bool all_pooled = true;
      for (int r = 0; r < size(); ++r) {
        offsets[static_cast<std::size_t>(r)] =
            pooled_offset(r, count * data_type_size(dtype), data_type_size(dtype), o);
        all_pooled = all_pooled && offsets[static_cast<std::size_t>(r)] != kNotPooled;
      }
      if (all_pooled) return allreduce_pooled(bytes, count, dtype, op, offsets, o);
    }
    allreduce_chunks(bytes, count, dtype, op, -1, o);
  });
}

std::uint64_t ShmGroup::pooled_offset(int r, std::size_t bytes, std::size_t alignment,
                                      const Op& o) const {
  const std::uint64_t offset = shared(block(r)->buffer_offset).load(std::memory_order_relaxed);
  const std::size_t pool = layout_.pool_bytes();
  if (offset == kNotPooled ||
      (offset <= pool && bytes <= pool - offset && offset % alignment == 0)) {
    return offset;
  }
  throw CommError(detail::concat(describe_op(o.call.kind, o.seq, name()),
                                 ": the segment is corrupt: rank ", r, "'s buffer_offset ", offset,
                                 " does not hold the operation's ", bytes, " bytes (aligned to ",
                                 alignment, ") inside its ", pool, "-byte pool"));
}

std::shared_ptr<Work> ShmGroup::do_broadcast(void* data, std::size_t count, DataType dtype,
                                             int root) {
  const CallSignature call{
      .kind = OpKind::kBroadcast, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, root](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    broadcast_chunks(static_cast<std::byte*>(data), count * data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_reduce(void* data, std::size_t count, DataType dtype,
                                          ReduceOp op, int root) {
  // An allreduce whose last step (copying the reduced slices out) only the root takes: the other
  // ranks' buffers are scratch space by contract.
  const CallSignature call{
      .kind = OpKind::kReduce, .dtype = dtype, .op = op, .root = root, .count = count};
  return enqueue(call, [this, data, count, dtype, op, root](Op& o) {
    if (size() == 1) return;
    if (count == 0) return arrive(o);
    allreduce_chunks(static_cast<std::byte*>(data), count, dtype, op, root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_allgather(const void* in, void* out, std::size_t count,
                                             DataType dtype) {
  const CallSignature call{.kind = OpKind::kAllgather, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](Op& o) {
    const std::size_t bytes = count * data_type_size(dtype);
    if (count == 0) return size() == 1 ? void() : arrive(o);
    allgatherv_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                      std::vector<std::size_t>(static_cast<std::size_t>(size()), bytes), o);
  });
}

std::shared_ptr<Work> ShmGroup::do_allgatherv(const void* in, void* out,
                                              const std::vector<std::size_t>& counts,
                                              DataType dtype) {
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  const CallSignature call{.kind = OpKind::kAllgatherv,
                           .dtype = dtype,
                           .count = total,
                           .counts_hash = hash_counts(counts)};
  std::vector<std::size_t> block_bytes;
  block_bytes.reserve(counts.size());
  for (std::size_t c : counts) block_bytes.push_back(c * data_type_size(dtype));
  return enqueue(call, [this, in, out, total, block_bytes = std::move(block_bytes)](Op& o) {
    if (total == 0) return size() == 1 ? void() : arrive(o);
    allgatherv_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), block_bytes,
                      o);
  });
}

std::shared_ptr<Work> ShmGroup::do_reduce_scatter(const void* in, void* out, std::size_t recv_count,
                                                  DataType dtype, ReduceOp op) {
  const CallSignature call{
      .kind = OpKind::kReduceScatter, .dtype = dtype, .op = op, .count = recv_count};
  return enqueue(call, [this, in, out, recv_count, dtype, op](Op& o) {
    if (recv_count == 0) return size() == 1 ? void() : arrive(o);
    if (size() == 1) {
      std::memmove(out, in, recv_count * data_type_size(dtype));
      return;
    }
    reduce_scatter_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                          recv_count, dtype, op, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_gather(const void* in, void* out, std::size_t count,
                                          DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kGather, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    gather_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out),
                  count * data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_scatter(const void* in, void* out, std::size_t count,
                                           DataType dtype, int root) {
  const CallSignature call{.kind = OpKind::kScatter, .dtype = dtype, .root = root, .count = count};
  return enqueue(call, [this, in, out, count, dtype, root](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    scatter_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), count,
                   data_type_size(dtype), root, o);
  });
}

std::shared_ptr<Work> ShmGroup::do_alltoall(const void* in, void* out, std::size_t count,
                                            DataType dtype) {
  const CallSignature call{.kind = OpKind::kAlltoall, .dtype = dtype, .count = count};
  return enqueue(call, [this, in, out, count, dtype](Op& o) {
    if (count == 0) return size() == 1 ? void() : arrive(o);
    alltoall_chunks(static_cast<const std::byte*>(in), static_cast<std::byte*>(out), count,
                    data_type_size(dtype), o);
  });
}

std::shared_ptr<Work> ShmGroup::do_barrier() {
  const CallSignature call{.kind = OpKind::kBarrier};
  return enqueue(call, [this](Op& o) {
    if (size() > 1) arrive(o);
  });
}

void ShmGroup::start_p2p() {
  if (p2p_) return;
  p2p_ =
      std::make_unique<P2pEngine>(base_, layout_, rank(), name(), options().timeout,
                                  [this](const std::string& reason) { failure_.record(reason); });
}

std::shared_ptr<Work> ShmGroup::failed_p2p(const char* kind, int peer, std::uint32_t tag,
                                           const std::string& reason) const {
  auto work = std::make_shared<AsyncWork>(
      detail::concat(kind, " to/from rank ", peer, " (tag ", tag, ") on group ", name()));
  work->fail(std::make_exception_ptr(CommError(
      detail::concat(work->description(), ": not run: the group failed earlier: ", reason))));
  return work;
}

std::shared_ptr<Work> ShmGroup::do_send(const void* data, std::size_t count, DataType dtype,
                                        int dst, std::uint32_t tag) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    return failed_p2p("send", dst, tag, reason);
  }
  start_p2p();
  return p2p_->send(data, count * data_type_size(dtype), dst, tag);
}

std::shared_ptr<Work> ShmGroup::do_recv(void* data, std::size_t count, DataType dtype, int src,
                                        std::uint32_t tag) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    return failed_p2p("recv", src, tag, reason);
  }
  start_p2p();
  return p2p_->recv(data, count * data_type_size(dtype), src, tag);
}

std::unique_ptr<ProcessGroup> ShmGroup::do_split(int color, int key, std::string name) {
  const int index = ++splits_;
  auto exchange = std::make_shared<std::vector<std::int64_t>>(2 * static_cast<std::size_t>(size()));
  auto mine =
      std::make_shared<std::array<std::int64_t, 2>>(std::array<std::int64_t, 2>{color, key});
  const CallSignature call{.kind = OpKind::kSplit};
  auto work = enqueue(call, [this, exchange, mine](Op& o) {
    allgatherv_chunks(
        reinterpret_cast<const std::byte*>(mine->data()),
        reinterpret_cast<std::byte*>(exchange->data()),
        std::vector<std::size_t>(static_cast<std::size_t>(size()), sizeof(std::int64_t) * 2), o);
  });
  work->wait();
  if (color == kNoColor) return nullptr;
  const SplitPlace place = split_place(*exchange, color, rank());
  Setup setup;
  setup.store = store_;
  setup.key_prefix = detail::concat(key_prefix_, "/split", index, "/", color);
  setup.rank = place.rank;
  setup.size = place.size;
  setup.options = options();
  setup.options.name =
      name.empty() ? detail::concat(this->name(), "/split", index, ":", color) : std::move(name);
  setup.shm = shm_options_;
  return std::make_unique<ShmGroup>(std::move(setup));
}

}  // namespace shm

std::unique_ptr<ProcessGroup> make_shm_group(std::shared_ptr<Store> store, int rank, int size,
                                             GroupOptions options, ShmOptions shm_options) {
  check_group_args("make_shm_group", store.get(), rank, size, options);
  const std::size_t slot = shm_options.slot_bytes;
  if (slot % shm::kCacheLine != 0 || slot < shm::kCacheLine * static_cast<std::size_t>(size)) {
    throw ValueError(detail::concat("make_shm_group: slot_bytes ", slot,
                                    " must be a multiple of 64 and at least 64 * size (", 64 * size,
                                    ")"));
  }
  const std::string& prefix = shm_options.segment_name_prefix;
  const bool prefix_ok = !prefix.empty() && prefix.size() <= 100 &&
                         std::all_of(prefix.begin(), prefix.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                         });
  if (!prefix_ok) {
    throw ValueError(detail::concat("make_shm_group: segment_name_prefix '", prefix,
                                    "' must be 1-100 letters, digits, '-', '_' or '.'"));
  }
  shm::ShmGroup::Setup setup;
  setup.store = std::move(store);
  setup.key_prefix = "comm/" + options.name;
  setup.rank = rank;
  setup.size = size;
  setup.options = std::move(options);
  setup.shm = std::move(shm_options);
  return std::make_unique<shm::ShmGroup>(std::move(setup));
}

}  // namespace tessera::comm
