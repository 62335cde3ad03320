// ShmGroup's steps and waits: publishing a step, waiting for peers within the deadline, and
// naming what went wrong (a failed, exited or stuck rank, a mismatched call) when a wait ends.
#include "shm_group_internal.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <random>
#include <thread>
#include <utility>

#include "duration.h"
#include "group_setup.h"
#include "p2p_engine.h"
#include "peer_process.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::shm {
namespace {

using Clock = std::chrono::steady_clock;

// A waiting rank spins this long, then calls sched_yield between looks (about a microsecond when
// no other thread wants the CPU, and it lets a rank that shares the core run) for this long,
// then sleeps on the futex of a rank it waits for. Measured with two ranks on two cores, 4 x 200
// allreduces of 4 MiB per run (perf stat): a 5 us spin, 18-22k context switches and 4.6-7.0
// GB/s per run; 50 us, 4.2-5.5k and 5.0-7.4 GB/s.
constexpr auto kSpinTime = std::chrono::microseconds(50);
constexpr auto kYieldTime = std::chrono::microseconds(1000);
// Longest futex sleep: bounds how late a wait notices its deadline or a peer that failed.
constexpr auto kMaxSleep = std::chrono::microseconds(2000);
// How often a waiting rank checks that the processes it waits for still live (peer_process_ended):
// how soon a dead peer is noticed, which an elastic job's recovery waits for.
constexpr auto kPidCheckInterval = std::chrono::milliseconds(2);

}  // namespace

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

void ShmGroup::check_peers(const std::vector<int>& pending, std::uint64_t target, const Op& op,
                           bool check_pids) const {
  for (int r : pending) {
    RankBlock* b = block(r);
    const std::uint32_t raw = shared(b->state).load(std::memory_order_acquire);
    // A rank may reach the target and then shut down between the caller's look at its progress
    // and this look at its state. Its progress was published before its state: read it again.
    if (shared(b->progress).load(std::memory_order_acquire) >= target) continue;
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
    if (check_pids && peer_process_ended(b->pid)) {
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
      check_peers(pending, target, op, check_pids);
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

}  // namespace tessera::comm::shm
