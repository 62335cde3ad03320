#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/store.h"
#include "tessera/comm/timeouts.h"

namespace tessera::comm {

struct TcpStoreOptions {
  // Where the TcpStoreServer listens. Never defaulted from a missing setting by this library:
  // the caller passes what the user chose.
  std::string host = "127.0.0.1";
  int port = 0;
  // The job token the server expects; the client proves it holds it and never sends it.
  std::string token;
  // How long to keep retrying while nothing listens yet (the server may start after the client).
  std::chrono::milliseconds connect_timeout = kDefaultConnectTimeout;
  // Default deadline of get() and wait().
  std::chrono::milliseconds timeout = kDefaultTimeout;
};

// Client of a TcpStoreServer. Thread-safe: concurrent calls use separate connections (kept in a
// small pool), so one thread's long wait() does not delay another's set().
class TcpStore final : public Store {
 public:
  // Connects, retrying until options.connect_timeout (then TimeoutError naming the address, the
  // time tried and the last error), and runs the challenge-response over the token: the token
  // never crosses the wire, and the server must prove it holds it too. A refusal throws CommError
  // "store at HOST:PORT refused the connection: bad job token"; a server that cannot prove the
  // token throws CommError before anything is sent to it.
  explicit TcpStore(TcpStoreOptions options);
  ~TcpStore() override;

  void set(const std::string& key, std::string_view value) override;
  [[nodiscard]] bool check(const std::vector<std::string>& keys) override;
  std::int64_t add(const std::string& key, std::int64_t delta) override;
  std::string compare_set(const std::string& key, std::string_view expected,
                          std::string_view desired) override;
  bool remove(const std::string& key) override;
  // "store at HOST:PORT".
  [[nodiscard]] std::string description() const override;

 protected:
  std::string do_get(const std::string& key, std::chrono::milliseconds timeout) override;
  void do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  class Connection;

  // Sends one request and returns the reply's body; `reply_deadline` bounds the wait for it.
  std::string request(std::string_view what, const std::string& frame,
                      std::chrono::steady_clock::time_point reply_deadline);
  std::unique_ptr<Connection> acquire(std::chrono::steady_clock::time_point deadline);
  void release(std::unique_ptr<Connection> connection);

  TcpStoreOptions options_;
  std::string address_;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// A fresh random job token (32 hex digits from the system's random source).
[[nodiscard]] std::string make_job_token();

}  // namespace tessera::comm
