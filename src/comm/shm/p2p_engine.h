#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "async_work.h"
#include "p2p_wire.h"
#include "segment.h"

namespace tessera::comm::shm {

// send/recv of a ShmGroup through the segment's rings: one single-producer single-consumer byte
// ring per ordered pair of ranks, written only by the sender's engine and read only by the
// receiver's. A message is a header (p2p_wire.h: tag, length) and its bytes; messages longer than
// the ring stream through it while the receiver drains it. Every position and header read from a
// ring is checked first: a corrupt one fails the group with a CommError naming the peer and the
// field.
//
// The engine's thread moves data both ways. Incoming messages are read as soon as they arrive:
// into the buffer of a matching posted recv (same source and tag, first posted first), else into
// a heap buffer that a later recv takes. So a send completes once its bytes are in the ring, and
// a receiver that has not posted its recv yet does not hold the sender up (beyond the ring's
// size until the receiver's engine runs, i.e. until it first calls send or recv).
//
// The thread sleeps on this rank's doorbell word in the segment when there is nothing to move;
// peers ring it when they write to or read from a ring of ours. Thread-safe.
class P2pEngine {
 public:
  // `on_failure` is called (from the engine's thread) with the message of the first operation
  // that times out or fails, to mark the group unusable.
  P2pEngine(std::byte* base, const Layout& layout, int rank, std::string group,
            std::chrono::milliseconds timeout, std::function<void(const std::string&)> on_failure);
  P2pEngine(const P2pEngine&) = delete;
  P2pEngine& operator=(const P2pEngine&) = delete;
  ~P2pEngine();

  // Post a transfer; its Work completes when the bytes are in the ring (send) or in `data` (recv),
  // or fails with TimeoutError at the group's timeout after posting. A recv whose length differs
  // from the matching send's fails with CommError.
  [[nodiscard]] std::shared_ptr<Work> send(const void* data, std::size_t bytes, int dst,
                                           std::uint32_t tag);
  [[nodiscard]] std::shared_ptr<Work> recv(void* data, std::size_t bytes, int src,
                                           std::uint32_t tag);

  // Lets the posted transfers finish (each within its deadline), then joins the thread.
  // Idempotent.
  void stop() noexcept;

 private:
  using Clock = std::chrono::steady_clock;

  // How a transfer ended, handed to its Work in issue order (ProcessGroup's rule for send/recv
  // handles): a transfer that finishes early is reported once those posted before it are.
  class Ticket {
   public:
    explicit Ticket(std::shared_ptr<AsyncWork> work) : work_(std::move(work)) {}
    [[nodiscard]] std::string description() const { return work_->description(); }
    [[nodiscard]] bool is_completed() const { return finished_; }
    void complete() { finished_ = true; }
    void fail(std::exception_ptr error) {
      if (finished_) return;
      finished_ = true;
      error_ = std::move(error);
    }
    // Passes the outcome on to the Work.
    void deliver() {
      if (error_) {
        work_->fail(error_);
      } else {
        work_->complete();
      }
    }

   private:
    std::shared_ptr<AsyncWork> work_;
    bool finished_ = false;
    std::exception_ptr error_;
  };

  struct Send {
    const std::byte* data = nullptr;
    std::size_t bytes = 0;
    std::size_t done = 0;
    bool header_written = false;
    std::uint32_t tag = 0;
    Clock::time_point posted;
    std::shared_ptr<Ticket> work;
  };
  struct Recv {
    std::byte* data = nullptr;
    std::size_t bytes = 0;
    std::uint32_t tag = 0;
    Clock::time_point posted;
    std::shared_ptr<Ticket> work;
  };
  // A message that arrived before its recv was posted.
  struct Unexpected {
    std::uint32_t tag = 0;
    std::vector<std::byte> data;
    bool complete = false;
    std::shared_ptr<Recv> claimed;  // a recv posted while it was still arriving
  };
  // The message being read from a peer's ring.
  struct Incoming {
    std::uint32_t tag = 0;
    std::size_t bytes = 0;
    std::size_t done = 0;
    std::shared_ptr<Recv> recv;              // its recv, or null
    std::shared_ptr<Unexpected> unexpected;  // or where it is kept, or both null: discarded
  };
  struct Peer {
    std::deque<Send> sends;
    std::deque<std::shared_ptr<Recv>> recvs;
    std::deque<std::shared_ptr<Unexpected>> unexpected;
    bool reading = false;
    Incoming incoming;
  };

  void loop() noexcept;
  // A ticket for a new transfer, queued behind the earlier ones. Caller holds mutex_.
  std::shared_ptr<Ticket> issue(std::shared_ptr<AsyncWork> work);
  // Hands finished tickets at the head of the queue to their Works. Caller holds mutex_.
  void deliver();
  // Move what can be moved now; return whether anything moved. Caller holds mutex_. pump_all
  // fails the group when a peer's ring or header is corrupt (pump_send and pump_recv throw
  // CommError naming the peer and the field).
  bool pump_all();
  bool pump_send(int peer);
  bool pump_recv(int peer);
  void finish_recv(Recv& recv, const std::byte* data, std::size_t bytes);
  void fail_expired(Clock::time_point now);
  // Fails every transfer when a peer with transfers pending exited without shutting its group
  // down: nothing it owes can come any more. Checked every kPeerCheckInterval. Caller holds
  // mutex_, and calls it only when nothing moved.
  void fail_lost_peers(Clock::time_point now);
  void fail_all(const std::string& reason);
  [[nodiscard]] bool has_pending() const;
  [[nodiscard]] static bool has_pending(const Peer& peer);
  void ring_doorbell(int r);
  [[nodiscard]] std::string describe(bool sending, int peer, std::uint32_t tag) const;

  std::byte* base_;
  const Layout& layout_;
  const int rank_;
  const std::string group_;
  const std::chrono::milliseconds timeout_;
  std::function<void(const std::string&)> on_failure_;

  mutable std::mutex mutex_;
  std::vector<Peer> peers_;
  std::deque<std::shared_ptr<Ticket>> tickets_;  // in issue order
  std::uint64_t sends_posted_ = 0;
  std::uint64_t recvs_posted_ = 0;
  bool stopping_ = false;
  Clock::time_point next_peer_check_{};
  std::string broken_;  // the first failure; later transfers fail with it
  std::thread thread_;
};

}  // namespace tessera::comm::shm
