#include "p2p_engine.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <utility>

#include "duration.h"
#include "peer_process.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::shm {
namespace {

// An idle engine sleeps at most this long between looks at its deadlines and peers.
constexpr auto kIdleSleep = std::chrono::microseconds(20000);
// How often an engine with transfers pending and nothing to move checks that their peers still
// live (peer_process_ended).
constexpr auto kPeerCheckInterval = std::chrono::milliseconds(2);
// A busy engine (transfers pending, nothing to move) spins this long before it sleeps.
constexpr auto kBusySpinTime = std::chrono::microseconds(50);

void ring_write(std::byte* ring, std::size_t capacity, std::uint64_t pos, const std::byte* src,
                std::size_t n) {
  const std::size_t at = pos % capacity;
  const std::size_t first = std::min(n, capacity - at);
  std::memcpy(ring + at, src, first);
  if (n > first) std::memcpy(ring, src + first, n - first);
}

void ring_read(const std::byte* ring, std::size_t capacity, std::uint64_t pos, std::byte* dst,
               std::size_t n) {
  const std::size_t at = pos % capacity;
  const std::size_t first = std::min(n, capacity - at);
  if (dst != nullptr) {
    std::memcpy(dst, ring + at, first);
    if (n > first) std::memcpy(dst + first, ring, n - first);
  }
}

}  // namespace

P2pEngine::P2pEngine(std::byte* base, const Layout& layout, int rank, std::string group,
                     std::chrono::milliseconds timeout,
                     std::function<void(const std::string&)> on_failure)
    : base_(base),
      layout_(layout),
      rank_(rank),
      group_(std::move(group)),
      timeout_(timeout),
      on_failure_(std::move(on_failure)),
      peers_(static_cast<std::size_t>(layout.size())) {
  thread_ = std::thread([this] { loop(); });
}

P2pEngine::~P2pEngine() { stop(); }

std::string P2pEngine::describe(bool sending, int peer, std::uint32_t tag) const {
  return detail::concat(sending ? "send #" : "recv #", sending ? sends_posted_ : recvs_posted_,
                        sending ? " to rank " : " from rank ", peer, " (tag ", tag, ") on group ",
                        group_);
}

void P2pEngine::ring_doorbell(int r) {
  RankBlock* block = layout_.rank(base_, r);
  shared(block->doorbell).fetch_add(1);
  if (shared(block->p2p_parked).load() != 0) futex_wake_all(&block->doorbell);
}

std::shared_ptr<Work> P2pEngine::send(const void* data, std::size_t bytes, int dst,
                                      std::uint32_t tag) {
  std::unique_lock<std::mutex> lock(mutex_);
  ++sends_posted_;
  auto work = std::make_shared<AsyncWork>(describe(true, dst, tag));
  std::shared_ptr<Ticket> ticket = issue(work);
  if (bytes == 0) {
    ticket->complete();
    deliver();
    return work;
  }
  if (!broken_.empty() || stopping_) {
    ticket->fail(std::make_exception_ptr(
        CommError(detail::concat(work->description(), ": not run: ",
                                 broken_.empty() ? std::string("the group is shut down")
                                                 : "the group failed earlier: " + broken_))));
    deliver();
    return work;
  }
  Send send;
  send.data = static_cast<const std::byte*>(data);
  send.bytes = bytes;
  send.tag = tag;
  send.posted = Clock::now();
  send.work = std::move(ticket);
  peers_[static_cast<std::size_t>(dst)].sends.push_back(std::move(send));
  lock.unlock();
  ring_doorbell(rank_);
  return work;
}

std::shared_ptr<Work> P2pEngine::recv(void* data, std::size_t bytes, int src, std::uint32_t tag) {
  std::unique_lock<std::mutex> lock(mutex_);
  ++recvs_posted_;
  auto work = std::make_shared<AsyncWork>(describe(false, src, tag));
  std::shared_ptr<Ticket> ticket = issue(work);
  if (bytes == 0) {
    ticket->complete();
    deliver();
    return work;
  }
  if (!broken_.empty() || stopping_) {
    ticket->fail(std::make_exception_ptr(
        CommError(detail::concat(work->description(), ": not run: ",
                                 broken_.empty() ? std::string("the group is shut down")
                                                 : "the group failed earlier: " + broken_))));
    deliver();
    return work;
  }
  auto recv = std::make_shared<Recv>();
  recv->data = static_cast<std::byte*>(data);
  recv->bytes = bytes;
  recv->tag = tag;
  recv->posted = Clock::now();
  recv->work = std::move(ticket);
  Peer& peer = peers_[static_cast<std::size_t>(src)];
  // The earliest message with this tag that no recv has taken yet is this recv's.
  for (auto it = peer.unexpected.begin(); it != peer.unexpected.end(); ++it) {
    Unexpected& message = **it;
    if (message.tag != tag || message.claimed) continue;
    if (message.complete) {
      finish_recv(*recv, message.data.data(), message.data.size());
      peer.unexpected.erase(it);
      deliver();
    } else {
      message.claimed = recv;
    }
    return work;
  }
  peer.recvs.push_back(std::move(recv));
  lock.unlock();
  ring_doorbell(rank_);
  return work;
}

std::shared_ptr<P2pEngine::Ticket> P2pEngine::issue(std::shared_ptr<AsyncWork> work) {
  auto ticket = std::make_shared<Ticket>(std::move(work));
  tickets_.push_back(ticket);
  return ticket;
}

void P2pEngine::deliver() {
  while (!tickets_.empty() && tickets_.front()->is_completed()) {
    tickets_.front()->deliver();
    tickets_.pop_front();
  }
}

void P2pEngine::finish_recv(Recv& recv, const std::byte* data, std::size_t bytes) {
  if (bytes != recv.bytes) {
    recv.work->fail(std::make_exception_ptr(
        CommError(detail::concat(recv.work->description(), ": the matching send carries ", bytes,
                                 " bytes, this recv expects ", recv.bytes))));
    return;
  }
  if (data != recv.data) std::memcpy(recv.data, data, bytes);
  recv.work->complete();
}

bool P2pEngine::pump_send(int peer) {
  Peer& state = peers_[static_cast<std::size_t>(peer)];
  if (state.sends.empty()) return false;
  RingHeader* ring = layout_.ring(base_, rank_, peer);
  std::byte* data = layout_.ring_data(base_, rank_, peer);
  const std::size_t capacity = layout_.ring_bytes();
  // Only this engine writes the head, but the segment is shared: checked as the tail is.
  std::uint64_t head = shared(ring->head).load(std::memory_order_relaxed);
  const std::uint64_t tail = shared(ring->tail).load(std::memory_order_acquire);
  check_ring({.head = head, .tail = tail}, capacity, rank_, peer);
  bool moved = false;
  while (!state.sends.empty()) {
    Send& send = state.sends.front();
    std::size_t space = capacity - static_cast<std::size_t>(head - tail);
    if (!send.header_written) {
      if (space < kMessageHeaderBytes) break;
      const auto header = encode_message_header({.tag = send.tag, .length = send.bytes});
      ring_write(data, capacity, head, header.data(), header.size());
      head += kMessageHeaderBytes;
      space -= kMessageHeaderBytes;
      send.header_written = true;
      moved = true;
    }
    const std::size_t n = std::min(space, send.bytes - send.done);
    if (n > 0) {
      ring_write(data, capacity, head, send.data + send.done, n);
      head += n;
      send.done += n;
      moved = true;
    }
    if (send.done < send.bytes) break;
    send.work->complete();
    state.sends.pop_front();
  }
  if (moved) {
    shared(ring->head).store(head, std::memory_order_release);
    ring_doorbell(peer);
  }
  return moved;
}

bool P2pEngine::pump_recv(int peer) {
  Peer& state = peers_[static_cast<std::size_t>(peer)];
  RingHeader* ring = layout_.ring(base_, peer, rank_);
  const std::byte* data = layout_.ring_data(base_, peer, rank_);
  const std::size_t capacity = layout_.ring_bytes();
  const std::uint64_t head = shared(ring->head).load(std::memory_order_acquire);
  // Only this engine writes the tail, but the segment is shared: checked as the head is.
  std::uint64_t tail = shared(ring->tail).load(std::memory_order_relaxed);
  check_ring({.head = head, .tail = tail}, capacity, peer, rank_);
  bool moved = false;
  while (head > tail) {
    if (!state.reading) {
      if (head - tail < kMessageHeaderBytes) break;
      std::array<std::byte, kMessageHeaderBytes> bytes;
      ring_read(data, capacity, tail, bytes.data(), bytes.size());
      const MessageHeader header = decode_message_header(bytes, peer);
      tail += kMessageHeaderBytes;
      moved = true;
      Incoming incoming;
      incoming.tag = header.tag;
      incoming.bytes = static_cast<std::size_t>(header.length);
      auto match = std::find_if(state.recvs.begin(), state.recvs.end(),
                                [&](const auto& r) { return r->tag == incoming.tag; });
      if (match != state.recvs.end()) {
        incoming.recv = *match;
        state.recvs.erase(match);
        if (incoming.recv->bytes != incoming.bytes) {
          // Discarded: the recv fails and the bytes are skipped.
          finish_recv(*incoming.recv, nullptr, incoming.bytes);
          incoming.recv.reset();
        }
      } else {
        // Its buffer grows as the bytes arrive: what a header claims allocates nothing.
        incoming.unexpected = std::make_shared<Unexpected>();
        incoming.unexpected->tag = incoming.tag;
        state.unexpected.push_back(incoming.unexpected);
      }
      state.incoming = std::move(incoming);
      state.reading = true;
    }
    Incoming& in = state.incoming;
    const std::size_t n = std::min(static_cast<std::size_t>(head - tail), in.bytes - in.done);
    std::byte* target = nullptr;
    if (in.recv) {
      target = in.recv->data + in.done;
    } else if (in.unexpected) {
      in.unexpected->data.resize(in.done + n);
      target = in.unexpected->data.data() + in.done;
    }
    ring_read(data, capacity, tail, target, n);
    tail += n;
    in.done += n;
    moved = moved || n > 0;
    if (in.done < in.bytes) break;
    state.reading = false;
    if (in.recv) {
      in.recv->work->complete();
    } else if (in.unexpected) {
      in.unexpected->complete = true;
      if (auto claimed = std::move(in.unexpected->claimed)) {
        finish_recv(*claimed, in.unexpected->data.data(), in.unexpected->data.size());
        std::erase(state.unexpected, in.unexpected);
      }
    }
    state.incoming = Incoming();
  }
  if (moved) {
    shared(ring->tail).store(tail, std::memory_order_release);
    ring_doorbell(peer);
  }
  return moved;
}

bool P2pEngine::has_pending(const Peer& peer) {
  if (!peer.sends.empty() || !peer.recvs.empty() || peer.reading) return true;
  return std::any_of(peer.unexpected.begin(), peer.unexpected.end(),
                     [](const auto& message) { return message->claimed != nullptr; });
}

bool P2pEngine::has_pending() const {
  return std::any_of(peers_.begin(), peers_.end(),
                     [](const Peer& peer) { return has_pending(peer); });
}

void P2pEngine::fail_lost_peers(Clock::time_point now) {
  if (now < next_peer_check_) return;
  next_peer_check_ = now + kPeerCheckInterval;
  for (std::size_t p = 0; p < peers_.size(); ++p) {
    if (!has_pending(peers_[p])) continue;
    const RankBlock* block = layout_.rank(base_, static_cast<int>(p));
    const auto state = static_cast<RankState>(shared(block->state).load(std::memory_order_acquire));
    const std::int32_t pid = block->pid;
    // A rank that shut its group down finished its sends first: what it sent is in the ring.
    if (state == RankState::kClosed) continue;
    if (!peer_process_ended(pid)) continue;
    const std::string reason =
        detail::concat("rank ", p, " (pid ", pid, ") exited without shutting its group down, with ",
                       "point-to-point transfers to or from it pending on group ", group_);
    fail_all(reason);
    if (on_failure_) on_failure_(reason);
    return;
  }
}

void P2pEngine::fail_all(const std::string& reason) {
  if (broken_.empty()) broken_ = reason;
  auto error = [&](const std::string& what) {
    return std::make_exception_ptr(
        CommError(detail::concat(what, ": not completed: the group failed: ", reason)));
  };
  for (Peer& peer : peers_) {
    for (Send& send : peer.sends) send.work->fail(error(send.work->description()));
    for (auto& recv : peer.recvs) recv->work->fail(error(recv->work->description()));
    for (auto& message : peer.unexpected) {
      if (message->claimed) {
        message->claimed->work->fail(error(message->claimed->work->description()));
      }
    }
    if (peer.reading && peer.incoming.recv) {
      peer.incoming.recv->work->fail(error(peer.incoming.recv->work->description()));
    }
    peer = Peer();
  }
}

void P2pEngine::fail_expired(Clock::time_point now) {
  std::string first;
  std::exception_ptr first_error;
  auto expire = [&](const std::shared_ptr<Ticket>& work, Clock::time_point posted, int peer,
                    bool sending) {
    if (now - posted < timeout_ || work->is_completed()) return false;
    RankBlock* block = layout_.rank(base_, peer);
    const auto state = static_cast<RankState>(shared(block->state).load(std::memory_order_acquire));
    const std::string message = detail::concat(
        work->description(), ": no matching ", sending ? "recv on rank " : "send from rank ", peer,
        " within ", to_ms(now - posted), " ms (timeout ", timeout_.count(), " ms)",
        state == RankState::kClosed ? "; rank " + std::to_string(peer) + " has shut its group down"
                                    : std::string());
    if (first.empty()) {
      first = message;
      first_error = std::make_exception_ptr(TimeoutError(message));
    }
    work->fail(std::make_exception_ptr(TimeoutError(message)));
    return true;
  };
  for (std::size_t p = 0; p < peers_.size(); ++p) {
    Peer& peer = peers_[p];
    const int r = static_cast<int>(p);
    // A send partly in the ring cannot be taken back: the failure breaks the group below.
    for (Send& send : peer.sends) expire(send.work, send.posted, r, true);
    std::erase_if(peer.recvs,
                  [&](const auto& recv) { return expire(recv->work, recv->posted, r, false); });
    for (auto& message : peer.unexpected) {
      if (message->claimed && expire(message->claimed->work, message->claimed->posted, r, false)) {
        message->claimed.reset();
      }
    }
    if (peer.reading && peer.incoming.recv &&
        expire(peer.incoming.recv->work, peer.incoming.recv->posted, r, false)) {
      peer.incoming.recv.reset();
    }
  }
  if (!first.empty()) {
    fail_all(first);
    if (on_failure_) on_failure_(first);
  }
}

bool P2pEngine::pump_all() {
  // A failed group moves nothing more: its transfers fail as they are posted.
  if (!broken_.empty()) return false;
  bool moved = false;
  try {
    for (int p = 0; p < layout_.size(); ++p) {
      if (p == rank_) continue;
      moved = pump_send(p) || moved;
      moved = pump_recv(p) || moved;
    }
  } catch (const std::exception& e) {
    // A corrupt ring or header: nothing more can be read from that peer in order, so the group
    // fails with what was wrong. bad_alloc of an unexpected message's buffer ends here too.
    const std::string reason =
        detail::concat("point-to-point transfers on group ", group_, ": ", e.what());
    fail_all(reason);
    if (on_failure_) on_failure_(reason);
  }
  return moved;
}

void P2pEngine::loop() noexcept {
  pthread_setname_np(pthread_self(), "tessera-shm-p2p");
  RankBlock* mine = layout_.rank(base_, rank_);
  auto idle_since = Clock::now();
  for (;;) {
    const std::uint32_t bell = shared(mine->doorbell).load();
    bool moved = false;
    bool pending = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      moved = pump_all();
      const auto now = Clock::now();
      fail_expired(now);
      // Only when nothing moved: a peer that exited may have left data in our ring.
      if (!moved) fail_lost_peers(now);
      deliver();
      pending = has_pending();
      if (stopping_ && !pending) return;
    }
    if (moved) {
      idle_since = Clock::now();
      continue;
    }
    if (pending && Clock::now() - idle_since < kBusySpinTime) {
      cpu_relax();
      continue;
    }
    // Nothing to move: sleep until a peer or a caller rings, bounded so deadlines are noticed.
    shared(mine->p2p_parked).store(1);
    futex_wait(&mine->doorbell, bell, kIdleSleep);
    shared(mine->p2p_parked).store(0);
    idle_since = Clock::now();
  }
}

void P2pEngine::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  ring_doorbell(rank_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace tessera::comm::shm
