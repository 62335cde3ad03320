#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tessera/core/serialize.h"
#include "tessera/parallel/ps/tables.h"

// What one server knows of the workers: how many steps each has pushed, and whether it is still
// training, done (it said bye) or gone (its connection dropped). SSP's gate lives here: a worker
// may start step t only while t - (steps of the slowest worker still training) <= staleness.
// Where a launcher starts dead workers again, a lost worker has `rejoin_window` to connect again
// before the job may end without it: the others finishing first must not leave it nothing to
// come back to.
namespace tessera::parallel::ps {

using Clock = std::chrono::steady_clock;

class WorkerClocks {
 public:
  WorkerClocks(int workers, Consistency consistency, int64_t staleness,
               Clock::duration rejoin_window = Clock::duration::zero());

  // The worker connected (again).
  void joined(uint32_t worker);
  // The worker finished pushing step `clock`.
  void pushed(uint32_t worker, int64_t clock);
  // Under SSP, blocks until `worker` may start step `clock`; throws TimeoutError naming the
  // slowest worker and its step at the deadline.
  void wait_to_start(uint32_t worker, int64_t clock, Clock::time_point deadline);
  void finished(uint32_t worker);
  void lost(uint32_t worker);
  // Every wait fails with `why` from now on (the server stops, or a BSP job lost a worker).
  void fail(const std::string& why);
  // Until no worker is training any more, or fail() was called; false at the deadline.
  [[nodiscard]] bool wait_all_done(Clock::time_point deadline);
  [[nodiscard]] int64_t steps(uint32_t worker);
  // Each worker's steps and status, for a server's checkpoint. restore() takes them back after a
  // restart, a worker that was training then counting as not connected yet.
  void save(BinaryWriter& out);
  void restore(BinaryReader& in);
  // Declares lost every worker that has not connected yet (a restarted server's workers that died
  // meanwhile would otherwise be waited for forever); returns them.
  std::vector<uint32_t> expire_waiting();

 private:
  enum class Status { kWaiting, kTraining, kDone, kLost };
  // The training worker with the fewest steps, or -1 when none trains.
  [[nodiscard]] int slowest() const;
  [[nodiscard]] bool all_done(Clock::time_point now) const;
  // The soonest a lost worker's rejoin window closes, if one is still open.
  [[nodiscard]] Clock::time_point next_window_end(Clock::time_point now) const;

  Consistency consistency_;
  int64_t staleness_;
  Clock::duration rejoin_window_;
  std::mutex mutex_;
  std::condition_variable changed_;  // SSP's gate: a worker's steps or status changed
  std::condition_variable done_;     // a worker finished or was lost, or fail()
  std::vector<int64_t> steps_;
  std::vector<Status> status_;
  std::vector<Clock::time_point> may_rejoin_until_;  // of each lost worker
  std::string failure_;
};

}  // namespace tessera::parallel::ps
