#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store_protocol.h"

namespace tessera::comm {

// The TcpStore server without its sockets: the protocol of each connection (a "session"), the
// keys, and the waits parked on them. The server's poll loop hands each session the bytes its
// peer sent and sends what the session leaves in output(); a fuzz harness drives it the same way.
// Every call takes the current time, so nothing here reads a clock.
// Not thread-safe: one thread drives it.
class StoreService {
 public:
  using Clock = std::chrono::steady_clock;
  using SessionId = std::uint64_t;
  // Receives each log line, without a newline.
  using Log = std::function<void(const std::string& line)>;

  // Sessions that may await their handshake at once. Enough for every rank of a large job
  // connecting in the same instant; a client whose session is closed to make room retries.
  static constexpr std::size_t kMaxUnauthenticated = 128;
  // Refusals, late handshakes and evictions are logged at most once per interval per kind; the
  // next line says how many were held back. A stranger cannot flood the job's log.
  static constexpr auto kLogInterval = std::chrono::seconds(10);

  enum class SessionState {
    kOpen,
    kClosing,  // close once output() is sent: a refusal is on its way
    kClosed,   // close now: dropped (malformed, late, evicted)
  };

  // `token`: what clients must prove they hold (non-empty).
  StoreService(std::string token, Log log);

  // A new connection from `peer` ("address:port", for logs); its challenge is in output() at
  // once. When kMaxUnauthenticated sessions await their handshake already, the oldest of them is
  // closed: a stranger's idle connections cannot lock the job's ranks out.
  [[nodiscard]] SessionId open(std::string peer, Clock::time_point now);
  // Bytes the peer sent: handles every complete frame, and answers other sessions' waits that a
  // set releases. Ignored once the session is not kOpen.
  void receive(SessionId id, std::string_view bytes, Clock::time_point now);
  // Bytes to send to the peer; the caller erases what it sent.
  [[nodiscard]] std::string& output(SessionId id);
  [[nodiscard]] SessionState state(SessionId id) const;
  // Forgets a session: its connection is closed or gone.
  void close(SessionId id);
  // Answers waits whose deadline passed, closes sessions whose handshake is late, and writes the
  // count of log lines held back once their interval is over.
  void expire(Clock::time_point now);
  // When expire() next has something to do; nullopt when nothing is pending.
  [[nodiscard]] std::optional<Clock::time_point> next_deadline() const;
  // Sessions awaiting their handshake.
  [[nodiscard]] std::size_t unauthenticated() const { return awaiting_.size(); }

 private:
  // A blocked kGet or kWait, answered when its keys are set or its deadline passes.
  struct Pending {
    StoreCommand command;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };
  struct Session {
    SessionId id = 0;
    std::string peer;
    SessionState state = SessionState::kOpen;
    bool authenticated = false;
    std::string server_nonce;
    Clock::time_point handshake_deadline;
    std::string in;
    std::string out;
    std::optional<Pending> pending;
  };
  enum class Noise { kRefused, kLate, kEvicted };
  struct Throttle {
    bool logged = false;
    Clock::time_point last;
    std::size_t held = 0;
    std::string latest;
  };

  Session& session(SessionId id);
  const Session& session(SessionId id) const;
  void serve_ready(Clock::time_point now);
  bool take_frame(Session& s, Clock::time_point now);
  void handshake(Session& s, std::string_view body, Clock::time_point now);
  void handle(Session& s, std::string_view body, Clock::time_point now);
  void park(Session& s, StoreCommand command, std::vector<std::string> keys,
            std::int64_t timeout_ms, Clock::time_point now);
  [[nodiscard]] bool ready(const Pending& p) const;
  void answer_pending(Session& s);
  void time_out_pending(Session& s);
  void reply(Session& s, std::string frame) { s.out += frame; }
  // The session stops awaiting its handshake (authenticated, refused, dropped or gone).
  void settle(Session& s) { awaiting_.erase(s.id); }
  void refuse(Session& s, const std::string& why, Clock::time_point now);
  void drop(Session& s);
  void malformed(Session& s, const std::string& what);
  void note(Noise kind, const std::string& line, Clock::time_point now);
  void flush_held(Throttle& t, Clock::time_point now);

  const std::string token_;
  const Log log_;
  SessionId next_id_ = 1;
  std::map<SessionId, Session> sessions_;  // by id: oldest first
  std::set<SessionId> awaiting_;           // sessions awaiting their handshake, oldest first
  std::unordered_map<std::string, std::string> values_;
  std::array<Throttle, 3> throttles_;
};

}  // namespace tessera::comm
