#include "tessera/comm/tcp_store.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>
#include <utility>

#include "duration.h"
#include "store_protocol.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/socket.h"
#include "tessera/comm/token_auth.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

// Beyond a blocking request's own timeout (which the server enforces), how long the client waits
// for the answer before it calls the server unresponsive.
constexpr auto kReplyGrace = std::chrono::seconds(2);
constexpr auto kFirstRetryDelay = std::chrono::milliseconds(10);
constexpr auto kMaxRetryDelay = std::chrono::milliseconds(500);

std::string join_keys(const std::vector<std::string>& keys) {
  std::string text = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) text += ", ";
    text += "'" + keys[i] + "'";
  }
  return text + "]";
}

}  // namespace

// One connection to the server, authenticated once authenticate() returned true; used by one
// thread at a time.
class TcpStore::Connection {
 public:
  explicit Connection(Socket socket) : socket_(std::move(socket)) {}

  // The client's half of the handshake (store_protocol.h). Throws CommError when the server
  // refuses the token, cannot prove that it holds it, or speaks another protocol. Returns false,
  // with *error saying why, when the connection broke off first: a server with many connections
  // awaiting their handshake closes the oldest, and a retry gets through.
  bool authenticate(const std::string& address, const std::string& token,
                    Clock::time_point deadline, std::string* error) {
    std::string hello;
    IoStatus status = transact("", &hello, kMaxHandshakeFrame, deadline, error);
    if (status == IoStatus::kClosed) *error = "the server closed the connection";
    if (status == IoStatus::kTimeout) {
      *error = detail::concat("no challenge within ", to_ms(kHandshakeTimeout),
                              " ms (a tessera store of an older version waits for the client to "
                              "speak first)");
    }
    if (status != IoStatus::kOk) return false;
    const std::string server_nonce = read_challenge(address, hello);
    const std::string client_nonce = random_nonce();
    const std::string frame = FrameWriter()
                                  .u8(static_cast<std::uint8_t>(StoreCommand::kHandshake))
                                  .str(kStoreMagic)
                                  .str(client_nonce)
                                  .str(client_proof(token, server_nonce, client_nonce))
                                  .finish();
    std::string reply;
    status = transact(frame, &reply, kMaxHandshakeFrame, deadline, error);
    if (status == IoStatus::kClosed) *error = "the server closed the connection";
    if (status != IoStatus::kOk) return false;
    FrameReader reader(reply);
    const auto verdict = reader.u8();
    if (verdict == static_cast<std::uint8_t>(StoreStatus::kRefused)) {
      throw CommError(
          detail::concat("store at ", address, " refused the connection: bad job token"));
    }
    const auto proof = reader.str();
    if (verdict != static_cast<std::uint8_t>(StoreStatus::kOk) || !proof || !reader.at_end() ||
        !proofs_equal(*proof, server_proof(token, server_nonce, client_nonce))) {
      throw CommError(detail::concat("store at ", address,
                                     " could not prove that it holds the job token: it is not "
                                     "this job's store, or it was given another token"));
    }
    return true;
  }

  // Sends `frame` and reads the reply body. Throws TimeoutError past `deadline`, CommError when
  // the connection fails.
  std::string exchange(const std::string& address, std::string_view what, const std::string& frame,
                       Clock::time_point deadline) {
    std::string body;
    std::string error;
    switch (transact(frame, &body, kMaxFrame, deadline, &error)) {
      case IoStatus::kOk:
        return body;
      case IoStatus::kTimeout:
        throw TimeoutError(detail::concat("store at ", address, " did not answer ", what,
                                          " in time; the server is overloaded or hung"));
      case IoStatus::kClosed:
        throw CommError(
            detail::concat("store at ", address, ": ", what, ": the server closed the connection"));
      case IoStatus::kError:
        break;
    }
    throw CommError(detail::concat("store at ", address, ": ", what, ": ", error));
  }

 private:
  // Sends `frame` (nothing when empty) and reads one frame of at most `limit` bytes into *body.
  IoStatus transact(const std::string& frame, std::string* body, std::uint32_t limit,
                    Clock::time_point deadline, std::string* error) {
    IoStatus status = IoStatus::kOk;
    if (!frame.empty())
      status = send_all(socket_.fd(), frame.data(), frame.size(), deadline, error);
    char prefix[4];
    if (status == IoStatus::kOk) status = recv_all(socket_.fd(), prefix, 4, deadline, error);
    if (status != IoStatus::kOk) return status;
    const std::uint32_t length = frame_length(prefix);
    if (length == 0 || length > limit) {
      *error = detail::concat("malformed reply: a ", length, "-byte frame (at most ", limit, ")");
      return IoStatus::kError;
    }
    body->resize(length);
    return recv_all(socket_.fd(), body->data(), length, deadline, error);
  }

  // The server nonce of a challenge; throws CommError when `hello` is not one of this version.
  static std::string read_challenge(const std::string& address, const std::string& hello) {
    FrameReader reader(hello);
    const auto kind = reader.u8();
    const auto magic = reader.str();
    const auto nonce = reader.str();
    if (kind != static_cast<std::uint8_t>(StoreStatus::kChallenge) || !magic ||
        !magic->starts_with(kStoreMagicFamily)) {
      throw CommError(detail::concat("store at ", address,
                                     ": not a tessera store (its greeting is not a challenge)"));
    }
    if (*magic != kStoreMagic) {
      throw CommError(detail::concat("store at ", address, " speaks ", *magic, ", this client ",
                                     kStoreMagic, ": the hosts run different tessera versions"));
    }
    if (!nonce || nonce->size() != kNonceBytes || !reader.at_end()) {
      throw CommError(detail::concat("store at ", address, ": malformed challenge"));
    }
    return *nonce;
  }

  Socket socket_;
};

TcpStore::TcpStore(TcpStoreOptions options)
    : Store(options.timeout),
      options_(std::move(options)),
      address_(format_address(options_.host, options_.port)) {
  if (options_.host.empty()) {
    throw ValueError("TcpStore: empty host; pass the store's address (127.0.0.1 on one host)");
  }
  if (options_.port <= 0 || options_.port > 65535) {
    throw ValueError(detail::concat("TcpStore: port ", options_.port, " is not in [1, 65535]"));
  }
  // Connect now so a wrong address or token fails here, not at the first use.
  release(acquire(Clock::now() + options_.connect_timeout));
}

TcpStore::~TcpStore() = default;

std::string TcpStore::description() const { return "store at " + address_; }

std::unique_ptr<TcpStore::Connection> TcpStore::acquire(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
  }
  const auto start = Clock::now();
  deadline = std::min(deadline, start + options_.connect_timeout);
  auto delay = kFirstRetryDelay;
  int attempts = 0;
  std::string last_error;
  for (;;) {
    ++attempts;
    Socket socket = connect_tcp(options_.host, options_.port, deadline, &last_error);
    if (socket.valid()) {
      auto connection = std::make_unique<Connection>(std::move(socket));
      // The server gives a handshake kHandshakeTimeout, however little is left of `deadline`.
      if (connection->authenticate(address_, options_.token, Clock::now() + kHandshakeTimeout,
                                   &last_error)) {
        return connection;
      }
      last_error = "the handshake broke off: " + last_error;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      throw TimeoutError(detail::concat("could not connect to the store at ", address_,
                                        ": tried for ", to_ms(now - start), " ms (", attempts,
                                        attempts == 1 ? " attempt" : " attempts",
                                        "); last error: ", last_error));
    }
    // The server may not be up yet: back off, and make the last attempt at the deadline.
    std::this_thread::sleep_for(std::min<Clock::duration>(delay, deadline - now));
    delay =
        std::min(delay * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxRetryDelay));
  }
}

void TcpStore::release(std::unique_ptr<Connection> connection) {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  idle_.push_back(std::move(connection));
}

std::string TcpStore::request(std::string_view what, const std::string& frame,
                              Clock::time_point reply_deadline) {
  // A request never waits longer than its own deadline, connecting included.
  auto connection = acquire(std::min(Clock::now() + options_.connect_timeout, reply_deadline));
  // On an exception the connection is dropped: its stream may hold half a reply.
  std::string reply = connection->exchange(address_, what, frame, reply_deadline);
  release(std::move(connection));
  return reply;
}

void TcpStore::set(const std::string& key, std::string_view value) {
  request(
      "set",
      FrameWriter().u8(static_cast<std::uint8_t>(StoreCommand::kSet)).str(key).str(value).finish(),
      Clock::now() + timeout());
}

std::string TcpStore::do_get(const std::string& key, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const std::string reply = request("get",
                                    FrameWriter()
                                        .u8(static_cast<std::uint8_t>(StoreCommand::kGet))
                                        .str(key)
                                        .i64(timeout.count())
                                        .finish(),
                                    start + timeout + kReplyGrace);
  FrameReader reader(reply);
  const auto status = reader.u8();
  if (status == static_cast<std::uint8_t>(StoreStatus::kTimeout)) {
    throw TimeoutError(detail::concat("store at ", address_, ": get of key '", key,
                                      "' timed out after ", to_ms(Clock::now() - start),
                                      " ms: the key was never set"));
  }
  auto value = reader.str();
  if (status != static_cast<std::uint8_t>(StoreStatus::kOk) || !value) {
    throw CommError(detail::concat("store at ", address_, ": get: malformed reply"));
  }
  return std::move(*value);
}

void TcpStore::do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const std::string reply = request("wait",
                                    FrameWriter()
                                        .u8(static_cast<std::uint8_t>(StoreCommand::kWait))
                                        .strs(keys)
                                        .i64(timeout.count())
                                        .finish(),
                                    start + timeout + kReplyGrace);
  FrameReader reader(reply);
  const auto status = reader.u8();
  if (status == static_cast<std::uint8_t>(StoreStatus::kOk)) return;
  if (status == static_cast<std::uint8_t>(StoreStatus::kTimeout)) {
    auto missing = reader.strs();
    throw TimeoutError(detail::concat("store at ", address_, ": wait for keys ", join_keys(keys),
                                      " timed out after ", to_ms(Clock::now() - start),
                                      " ms; missing: ", join_keys(missing.value_or(keys))));
  }
  throw CommError(detail::concat("store at ", address_, ": wait: malformed reply"));
}

bool TcpStore::check(const std::vector<std::string>& keys) {
  const std::string reply =
      request("check",
              FrameWriter().u8(static_cast<std::uint8_t>(StoreCommand::kCheck)).strs(keys).finish(),
              Clock::now() + timeout());
  FrameReader reader(reply);
  const auto status = reader.u8();
  const auto all = reader.u8();
  if (status != static_cast<std::uint8_t>(StoreStatus::kOk) || !all) {
    throw CommError(detail::concat("store at ", address_, ": check: malformed reply"));
  }
  return *all != 0;
}

std::int64_t TcpStore::add(const std::string& key, std::int64_t delta) {
  const std::string reply = request(
      "add",
      FrameWriter().u8(static_cast<std::uint8_t>(StoreCommand::kAdd)).str(key).i64(delta).finish(),
      Clock::now() + timeout());
  FrameReader reader(reply);
  const auto status = reader.u8();
  if (status == static_cast<std::uint8_t>(StoreStatus::kError)) {
    throw ValueError(
        detail::concat("store at ", address_, ": ", reader.str().value_or("add failed")));
  }
  const auto value = reader.i64();
  if (status != static_cast<std::uint8_t>(StoreStatus::kOk) || !value) {
    throw CommError(detail::concat("store at ", address_, ": add: malformed reply"));
  }
  return *value;
}

std::string TcpStore::compare_set(const std::string& key, std::string_view expected,
                                  std::string_view desired) {
  const std::string reply = request("compare_set",
                                    FrameWriter()
                                        .u8(static_cast<std::uint8_t>(StoreCommand::kCompareSet))
                                        .str(key)
                                        .str(expected)
                                        .str(desired)
                                        .finish(),
                                    Clock::now() + timeout());
  FrameReader reader(reply);
  const auto status = reader.u8();
  auto value = reader.str();
  if (status != static_cast<std::uint8_t>(StoreStatus::kOk) || !value) {
    throw CommError(detail::concat("store at ", address_, ": compare_set: malformed reply"));
  }
  return std::move(*value);
}

bool TcpStore::remove(const std::string& key) {
  const std::string reply =
      request("remove",
              FrameWriter().u8(static_cast<std::uint8_t>(StoreCommand::kRemove)).str(key).finish(),
              Clock::now() + timeout());
  FrameReader reader(reply);
  const auto status = reader.u8();
  const auto erased = reader.u8();
  if (status != static_cast<std::uint8_t>(StoreStatus::kOk) || !erased) {
    throw CommError(detail::concat("store at ", address_, ": remove: malformed reply"));
  }
  return *erased != 0;
}

std::string make_job_token() {
  std::random_device random;  // the kernel's random source (getrandom) on Linux
  std::string token;
  char hex[9];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(random()));
    token += hex;
  }
  return token;
}

}  // namespace tessera::comm
