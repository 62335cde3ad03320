#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "call_signature.h"
#include "tessera/comm/store.h"

namespace tessera::comm {

// Keeps this rank's position in a group's sequence of collectives in the store, where the other
// ranks read it when an operation fails, to say which ranks did not arrive, which issued a
// different call, which timed out and which left.
//
// A position is written only once it has held still for a poll interval: a busy group whose
// operations complete quickly writes nothing, while a rank that is stuck or idle is visible to
// the others within publish_delay(). A record can therefore lag the truth only for a rank that
// is moving, never for one that is stuck in or before the operation that failed. Failures and
// shutdown are written at once.
//
// The store is only ever written from the tracker's own thread, and nothing waits on that thread
// for longer than kStoreGrace: a store that went away (its host exited first) delays neither a
// failing operation nor shutdown. enter()/complete() are called by the group's worker thread;
// the rest by any thread.
class ProgressTracker {
 public:
  enum class State : std::uint8_t { kRunning, kTimedOut, kFailed, kClosed };

  struct Position {
    std::uint64_t entered = 0;    // sequence number of the last collective started
    std::uint64_t completed = 0;  // ... and of the last one finished
    State state = State::kRunning;
    std::uint64_t failed = 0;  // the collective that timed out or failed, with those states
    std::string call;          // CallSignature::describe() of the last one started
  };
  struct RankRecord {
    int rank = 0;
    bool known = false;  // false when the record could not be read
    Position position;
  };

  // How long record_failure() and stop() wait for their write to reach the store.
  static constexpr std::chrono::milliseconds kStoreGrace{2000};

  // Publishes the starting position (nothing entered) before returning; throws what the store
  // throws. `timeout` is the group's operation timeout, which sets the poll interval.
  ProgressTracker(std::shared_ptr<Store> store, std::string key_prefix, int rank, int size,
                  std::chrono::milliseconds timeout);
  ProgressTracker(const ProgressTracker&) = delete;
  ProgressTracker& operator=(const ProgressTracker&) = delete;
  ~ProgressTracker();

  void enter(std::uint64_t seq, const CallSignature& call);
  void complete(std::uint64_t seq);
  // Records that collective `seq` failed here (by timeout or otherwise) and waits, up to
  // kStoreGrace, until the record is written: the group closes its connections next, and a peer
  // that sees them drop reads why.
  void record_failure(std::uint64_t seq, bool timed_out) noexcept;

  // Longest time a position that holds still takes to reach the store.
  [[nodiscard]] std::chrono::milliseconds publish_delay() const { return 2 * poll_ + poll_ / 2; }

  // Every rank's record (this rank's from memory); gives up on the store after `timeout`.
  [[nodiscard]] std::vector<RankRecord> read_all(std::chrono::milliseconds timeout);

  // Records that this rank left the group (unless it recorded a failure), waits up to
  // kStoreGrace for the write, and stops the thread. Idempotent.
  void stop() noexcept;

 private:
  struct Shared;

  [[nodiscard]] std::string key(int rank) const;

  std::shared_ptr<Store> store_;
  const std::string key_prefix_;
  const int rank_;
  const int size_;
  const std::chrono::milliseconds poll_;
  // State shared with the publishing thread, which may outlive the tracker when the store hangs.
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace tessera::comm
