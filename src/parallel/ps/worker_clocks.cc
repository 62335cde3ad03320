#include "worker_clocks.h"

#include <algorithm>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {

WorkerClocks::WorkerClocks(int workers, Consistency consistency, int64_t staleness,
                           Clock::duration rejoin_window)
    : consistency_(consistency),
      staleness_(staleness),
      rejoin_window_(rejoin_window),
      steps_(static_cast<size_t>(workers), 0),
      status_(static_cast<size_t>(workers), Status::kWaiting),
      may_rejoin_until_(static_cast<size_t>(workers)) {}

void WorkerClocks::joined(uint32_t worker) {
  std::lock_guard lock(mutex_);
  if (status_[worker] != Status::kDone) status_[worker] = Status::kTraining;
  changed_.notify_all();
}

void WorkerClocks::pushed(uint32_t worker, int64_t clock) {
  std::lock_guard lock(mutex_);
  steps_[worker] = std::max(steps_[worker], clock + 1);
  if (consistency_ == Consistency::kSsp) changed_.notify_all();
}

int WorkerClocks::slowest() const {
  int slowest = -1;
  for (size_t w = 0; w < steps_.size(); ++w) {
    // A worker not yet connected holds the others back too: it will start at step 0.
    if (status_[w] != Status::kTraining && status_[w] != Status::kWaiting) continue;
    if (slowest < 0 || steps_[w] < steps_[static_cast<size_t>(slowest)]) {
      slowest = static_cast<int>(w);
    }
  }
  return slowest;
}

void WorkerClocks::wait_to_start(uint32_t worker, int64_t clock, Clock::time_point deadline) {
  if (consistency_ != Consistency::kSsp) return;
  std::unique_lock lock(mutex_);
  // Pulling step `clock` says the worker is done with the steps before it: a restarted server
  // learns where each worker is before any of them pushes again (all may be waiting to pull).
  if (clock > steps_[worker]) {
    steps_[worker] = clock;
    changed_.notify_all();
  }
  const auto may_start = [&] {
    const int s = slowest();
    return !failure_.empty() || s < 0 || clock - steps_[static_cast<size_t>(s)] <= staleness_;
  };
  const bool ready = changed_.wait_until(lock, deadline, may_start);
  if (!failure_.empty()) throw comm::CommError(failure_);
  if (ready) return;
  const auto s = static_cast<size_t>(slowest());
  throw comm::TimeoutError(detail::concat(
      "worker ", worker, " may not start step ", clock, " more than ", staleness_,
      " steps ahead of the slowest, worker ", s, ", which has done ", steps_[s], " steps"));
}

void WorkerClocks::finished(uint32_t worker) {
  std::lock_guard lock(mutex_);
  status_[worker] = Status::kDone;
  changed_.notify_all();
  done_.notify_all();
}

void WorkerClocks::lost(uint32_t worker) {
  std::lock_guard lock(mutex_);
  if (status_[worker] != Status::kDone) {
    status_[worker] = Status::kLost;
    may_rejoin_until_[worker] = Clock::now() + rejoin_window_;
  }
  changed_.notify_all();
  done_.notify_all();
}

void WorkerClocks::fail(const std::string& why) {
  std::lock_guard lock(mutex_);
  failure_ = why;
  changed_.notify_all();
  done_.notify_all();
}

bool WorkerClocks::all_done(Clock::time_point now) const {
  for (size_t w = 0; w < status_.size(); ++w) {
    if (status_[w] == Status::kTraining || status_[w] == Status::kWaiting) return false;
    if (status_[w] == Status::kLost && now < may_rejoin_until_[w]) return false;
  }
  return true;
}

Clock::time_point WorkerClocks::next_window_end(Clock::time_point now) const {
  auto soonest = Clock::time_point::max();
  for (size_t w = 0; w < status_.size(); ++w) {
    if (status_[w] == Status::kLost && now < may_rejoin_until_[w]) {
      soonest = std::min(soonest, may_rejoin_until_[w]);
    }
  }
  return soonest;
}

bool WorkerClocks::wait_all_done(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    const auto now = Clock::now();
    if (all_done(now) || !failure_.empty()) return true;
    if (now >= deadline) return false;
    // No notification marks a window's end: wake for it.
    done_.wait_until(lock, std::min(deadline, next_window_end(now)));
  }
}

int64_t WorkerClocks::steps(uint32_t worker) {
  std::lock_guard lock(mutex_);
  return steps_[worker];
}

void WorkerClocks::save(BinaryWriter& out) {
  std::lock_guard lock(mutex_);
  out.write_u32(static_cast<uint32_t>(steps_.size()));
  for (size_t w = 0; w < steps_.size(); ++w) {
    out.write_i64(steps_[w]);
    // A restarted server waits for a worker that may still come back as for one training.
    const bool may_rejoin = status_[w] == Status::kLost && Clock::now() < may_rejoin_until_[w];
    out.write_u32(static_cast<uint32_t>(may_rejoin ? Status::kTraining : status_[w]));
  }
}

void WorkerClocks::restore(BinaryReader& in) {
  std::lock_guard lock(mutex_);
  const uint32_t workers = in.read_u32();
  if (workers != steps_.size()) {
    throw FormatError(
        detail::concat(in.source(), ": a job of ", workers, " workers, not ", steps_.size()));
  }
  for (size_t w = 0; w < steps_.size(); ++w) {
    const int64_t steps = in.read_i64();
    const uint32_t status = in.read_u32();
    if (steps < 0 || status > static_cast<uint32_t>(Status::kLost)) {
      throw FormatError(detail::concat(in.source(), ": worker ", w, " has ", steps,
                                       " steps and status ", status));
    }
    steps_[w] = steps;
    const auto s = static_cast<Status>(status);
    status_[w] = s == Status::kTraining ? Status::kWaiting : s;
  }
  changed_.notify_all();
  done_.notify_all();
}

std::vector<uint32_t> WorkerClocks::expire_waiting() {
  std::lock_guard lock(mutex_);
  std::vector<uint32_t> expired;
  for (size_t w = 0; w < status_.size(); ++w) {
    if (status_[w] != Status::kWaiting) continue;
    status_[w] = Status::kLost;
    expired.push_back(static_cast<uint32_t>(w));
  }
  changed_.notify_all();
  done_.notify_all();
  return expired;
}

}  // namespace tessera::parallel::ps
