#include "store_service.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "tessera/comm/token_auth.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

std::optional<std::int64_t> parse_int(const std::string& text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::string status_frame(StoreStatus status) {
  return FrameWriter().u8(static_cast<std::uint8_t>(status)).finish();
}

FrameWriter ok_writer() {
  FrameWriter writer;
  writer.u8(static_cast<std::uint8_t>(StoreStatus::kOk));
  return writer;
}

long long whole_seconds(std::chrono::steady_clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

StoreService::StoreService(std::string token, Log log)
    : token_(std::move(token)), log_(std::move(log)) {
  TESSERA_CHECK(!token_.empty(), "a store needs a job token");
}

StoreService::Session& StoreService::session(SessionId id) {
  auto it = sessions_.find(id);
  TESSERA_CHECK(it != sessions_.end(), "store session ", id);
  return it->second;
}

const StoreService::Session& StoreService::session(SessionId id) const {
  auto it = sessions_.find(id);
  TESSERA_CHECK(it != sessions_.end(), "store session ", id);
  return it->second;
}

StoreService::SessionId StoreService::open(std::string peer, Clock::time_point now) {
  while (awaiting_.size() >= kMaxUnauthenticated) {
    Session& oldest = session(*awaiting_.begin());
    note(Noise::kEvicted,
         detail::concat("dropped ", oldest.peer, ": it had not authenticated when a newer ",
                        "connection came (at most ", kMaxUnauthenticated, " may wait)"),
         now);
    drop(oldest);
  }
  std::string nonce = random_nonce();
  const SessionId id = next_id_++;
  Session& s = sessions_[id];
  s.id = id;
  s.peer = std::move(peer);
  s.handshake_deadline = now + kHandshakeTimeout;
  s.server_nonce = std::move(nonce);
  s.out = FrameWriter()
              .u8(static_cast<std::uint8_t>(StoreStatus::kChallenge))
              .str(kStoreMagic)
              .str(s.server_nonce)
              .finish();
  awaiting_.insert(id);
  return id;
}

void StoreService::receive(SessionId id, std::string_view bytes, Clock::time_point now) {
  Session& s = session(id);
  if (s.state != SessionState::kOpen) return;
  s.in.append(bytes);
  serve_ready(now);
}

std::string& StoreService::output(SessionId id) { return session(id).out; }

StoreService::SessionState StoreService::state(SessionId id) const { return session(id).state; }

void StoreService::close(SessionId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  settle(it->second);
  sessions_.erase(it);
}

// Serves buffered requests and blocked waits until nothing more can progress: a set may release a
// wait whose session has more requests queued behind it.
void StoreService::serve_ready(Clock::time_point now) {
  bool progress = true;
  while (progress) {
    progress = false;
    for (auto& [id, s] : sessions_) {
      if (s.state != SessionState::kOpen) continue;
      if (s.pending && ready(*s.pending)) {
        answer_pending(s);
        progress = true;
      }
      while (s.state == SessionState::kOpen && !s.pending && take_frame(s, now)) progress = true;
    }
  }
}

// Handles one complete frame from s.in, if there is one.
bool StoreService::take_frame(Session& s, Clock::time_point now) {
  if (s.in.size() < 4) return false;
  const std::uint32_t length = frame_length(s.in.data());
  if (!s.authenticated && length > kMaxHandshakeFrame) {
    refuse(s, detail::concat("a ", length, "-byte handshake (at most ", kMaxHandshakeFrame, ")"),
           now);
    return false;
  }
  if (length > kMaxFrame) {
    malformed(s, detail::concat("a ", length, "-byte frame (at most ", kMaxFrame, ")"));
    return false;
  }
  if (s.in.size() - 4 < length) return false;
  const std::string body = s.in.substr(4, length);
  s.in.erase(0, 4 + static_cast<std::size_t>(length));
  if (s.authenticated) {
    handle(s, body, now);
  } else {
    handshake(s, body, now);
  }
  return true;
}

void StoreService::handshake(Session& s, std::string_view body, Clock::time_point now) {
  FrameReader reader(body);
  const auto command = reader.u8();
  const auto magic = reader.str();
  if (command != static_cast<std::uint8_t>(StoreCommand::kHandshake) || !magic ||
      !magic->starts_with(kStoreMagicFamily)) {
    return refuse(s, "not a tessera store handshake", now);
  }
  if (*magic != kStoreMagic) {
    return refuse(s,
                  detail::concat("it speaks ", *magic, ", this store ", kStoreMagic,
                                 ": the hosts run different tessera versions"),
                  now);
  }
  const auto client_nonce = reader.str();
  const auto proof = reader.str();
  if (!client_nonce || client_nonce->size() != kNonceBytes || !proof || !reader.at_end()) {
    return refuse(s, "a malformed handshake", now);
  }
  if (!proofs_equal(*proof, client_proof(token_, s.server_nonce, *client_nonce))) {
    return refuse(s, "bad job token (its proof does not match)", now);
  }
  s.authenticated = true;
  settle(s);
  reply(s, ok_writer().str(server_proof(token_, s.server_nonce, *client_nonce)).finish());
}

void StoreService::handle(Session& s, std::string_view body, Clock::time_point now) {
  FrameReader r(body);
  const auto command = r.u8();
  if (!command) return malformed(s, "an empty request");
  switch (static_cast<StoreCommand>(*command)) {
    case StoreCommand::kSet: {
      auto key = r.str();
      auto value = r.str();
      if (!value || !r.at_end()) break;
      values_[*key] = std::move(*value);
      return reply(s, status_frame(StoreStatus::kOk));
    }
    case StoreCommand::kGet: {
      auto key = r.str();
      auto timeout = r.i64();
      if (!timeout || !r.at_end()) break;
      return park(s, StoreCommand::kGet, {std::move(*key)}, *timeout, now);
    }
    case StoreCommand::kAdd: {
      auto key = r.str();
      auto delta = r.i64();
      if (!delta || !r.at_end()) break;
      std::int64_t current = 0;
      if (auto it = values_.find(*key); it != values_.end()) {
        auto parsed = parse_int(it->second);
        if (!parsed) {
          return reply(s, FrameWriter()
                              .u8(static_cast<std::uint8_t>(StoreStatus::kError))
                              .str(detail::concat("add: key '", *key,
                                                  "' holds a value that is not an integer"))
                              .finish());
        }
        current = *parsed;
      }
      // Wraps around like the two's-complement sum it is, never undefined behaviour.
      current = static_cast<std::int64_t>(static_cast<std::uint64_t>(current) +
                                          static_cast<std::uint64_t>(*delta));
      values_[*key] = std::to_string(current);
      return reply(s, ok_writer().i64(current).finish());
    }
    case StoreCommand::kCompareSet: {
      auto key = r.str();
      auto expected = r.str();
      auto desired = r.str();
      if (!desired || !r.at_end()) break;
      auto it = values_.find(*key);
      if ((it == values_.end() && expected->empty()) ||
          (it != values_.end() && it->second == *expected)) {
        it = values_.insert_or_assign(*key, std::move(*desired)).first;
      }
      return reply(s, ok_writer().str(it == values_.end() ? std::string() : it->second).finish());
    }
    case StoreCommand::kCheck: {
      auto keys = r.strs();
      if (!keys || !r.at_end()) break;
      const bool all = std::all_of(keys->begin(), keys->end(),
                                   [&](const auto& k) { return values_.count(k) > 0; });
      return reply(s, ok_writer().u8(all ? 1 : 0).finish());
    }
    case StoreCommand::kWait: {
      auto keys = r.strs();
      auto timeout = r.i64();
      if (!timeout || !r.at_end()) break;
      return park(s, StoreCommand::kWait, std::move(*keys), *timeout, now);
    }
    case StoreCommand::kRemove: {
      auto key = r.str();
      if (!key || !r.at_end()) break;
      const bool erased = values_.erase(*key) > 0;
      return reply(s, ok_writer().u8(erased ? 1 : 0).finish());
    }
    case StoreCommand::kHandshake:
      break;
  }
  malformed(s, detail::concat("a malformed request (command ", static_cast<int>(*command), ", ",
                              body.size(), " bytes)"));
}

void StoreService::park(Session& s, StoreCommand command, std::vector<std::string> keys,
                        std::int64_t timeout_ms, Clock::time_point now) {
  s.pending = Pending{command, std::move(keys), now + clamp_wait(timeout_ms)};
  if (ready(*s.pending)) {
    answer_pending(s);
  } else if (s.pending->deadline <= now) {
    time_out_pending(s);
  }
}

bool StoreService::ready(const Pending& p) const {
  return std::all_of(p.keys.begin(), p.keys.end(),
                     [&](const auto& k) { return values_.count(k) > 0; });
}

void StoreService::answer_pending(Session& s) {
  const Pending p = std::move(*s.pending);
  s.pending.reset();
  if (p.command == StoreCommand::kGet) {
    reply(s, ok_writer().str(values_.at(p.keys[0])).finish());
  } else {
    reply(s, status_frame(StoreStatus::kOk));
  }
}

void StoreService::time_out_pending(Session& s) {
  std::vector<std::string> missing;
  for (const auto& k : s.pending->keys) {
    if (values_.count(k) == 0) missing.push_back(k);
  }
  s.pending.reset();
  reply(s,
        FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kTimeout)).strs(missing).finish());
}

void StoreService::refuse(Session& s, const std::string& why, Clock::time_point now) {
  note(Noise::kRefused, detail::concat("refused a connection from ", s.peer, ": ", why), now);
  settle(s);
  s.in.clear();
  s.state = SessionState::kClosing;
  reply(s, status_frame(StoreStatus::kRefused));
}

void StoreService::drop(Session& s) {
  settle(s);
  s.state = SessionState::kClosed;
  s.in.clear();
  s.out.clear();
  s.pending.reset();
}

// Only an authenticated peer gets here: a rank with a bug, worth a line each time.
void StoreService::malformed(Session& s, const std::string& what) {
  log_(detail::concat("dropped ", s.peer, ": it sent ", what));
  drop(s);
}

void StoreService::expire(Clock::time_point now) {
  for (auto& [id, s] : sessions_) {
    if (s.state != SessionState::kOpen) continue;
    if (!s.authenticated && now >= s.handshake_deadline) {
      note(Noise::kLate,
           detail::concat("dropped ", s.peer, ": no handshake within ",
                          whole_seconds(kHandshakeTimeout), " s"),
           now);
      drop(s);
    } else if (s.pending && now >= s.pending->deadline) {
      time_out_pending(s);
    }
  }
  // A timed-out wait may have requests queued behind it.
  serve_ready(now);
  for (Throttle& t : throttles_) {
    if (t.held > 0 && now - t.last >= kLogInterval) flush_held(t, now);
  }
}

std::optional<StoreService::Clock::time_point> StoreService::next_deadline() const {
  std::optional<Clock::time_point> next;
  auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
  for (const auto& [id, s] : sessions_) {
    if (s.state != SessionState::kOpen) continue;
    if (!s.authenticated) consider(s.handshake_deadline);
    if (s.pending) consider(s.pending->deadline);
  }
  for (const Throttle& t : throttles_) {
    if (t.held > 0) consider(t.last + kLogInterval);
  }
  return next;
}

void StoreService::note(Noise kind, const std::string& line, Clock::time_point now) {
  Throttle& t = throttles_[static_cast<std::size_t>(kind)];
  if (t.logged && now - t.last < kLogInterval) {
    ++t.held;
    t.latest = line;
    return;
  }
  if (t.held > 0) flush_held(t, now);
  log_(line);
  t.logged = true;
  t.last = now;
}

void StoreService::flush_held(Throttle& t, Clock::time_point now) {
  log_(detail::concat(t.held, t.held == 1 ? " more like this" : " more like these", " in the last ",
                      whole_seconds(now - t.last), " s; the latest: ", t.latest));
  t.held = 0;
  t.latest.clear();
  t.last = now;
}

}  // namespace tessera::comm
