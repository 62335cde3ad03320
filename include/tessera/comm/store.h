#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/timeouts.h"

namespace tessera::comm {

// A key-value store shared by the ranks of a job: rendezvous (ranks publish their addresses and
// wait for each other's), progress records for timeout diagnosis, and small control data.
// Values are byte strings. Implementations are thread-safe.
//
// Every blocking call has a deadline: the timeout given, else the store's default timeout().
// On expiry it throws TimeoutError naming the store, the missing keys and the time waited. A
// negative timeout counts as 0 (look once), and none is longer than kMaxTimeout.
class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store();

  // Sets `key` to `value`, replacing any previous value, and wakes waiters on it.
  virtual void set(const std::string& key, std::string_view value) = 0;

  // Value of `key`, waiting until it is set.
  [[nodiscard]] std::string get(const std::string& key) { return do_get(key, timeout_); }
  [[nodiscard]] std::string get(const std::string& key, std::chrono::milliseconds timeout) {
    return do_get(key, clamp_timeout(timeout));
  }

  // Returns once every key in `keys` is set.
  void wait(const std::vector<std::string>& keys) { do_wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
    do_wait(keys, clamp_timeout(timeout));
  }

  // True when every key in `keys` is set; does not wait.
  [[nodiscard]] virtual bool check(const std::vector<std::string>& keys) = 0;

  // Adds `delta` to the integer stored at `key` (absent counts as 0) and returns the new value.
  // The value is kept as decimal text, so get() on it returns e.g. "3". Throws ValueError when the
  // key holds something that is not an integer.
  virtual std::int64_t add(const std::string& key, std::int64_t delta) = 0;

  // Atomically: if `key` holds `expected` (or is absent and `expected` is empty), sets it to
  // `desired`. Returns the value held afterwards (`desired` on success).
  virtual std::string compare_set(const std::string& key, std::string_view expected,
                                  std::string_view desired) = 0;

  // Removes `key`; returns whether it was set.
  virtual bool remove(const std::string& key) = 0;

  // Names the store in messages: "store at 10.0.0.1:29500", "in-process store".
  [[nodiscard]] virtual std::string description() const = 0;

  // Default deadline of get() and wait().
  [[nodiscard]] std::chrono::milliseconds timeout() const { return timeout_; }

 protected:
  explicit Store(std::chrono::milliseconds timeout);

  [[nodiscard]] static std::chrono::milliseconds clamp_timeout(std::chrono::milliseconds timeout) {
    return std::clamp(timeout, std::chrono::milliseconds(0), kMaxTimeout);
  }

  virtual std::string do_get(const std::string& key, std::chrono::milliseconds timeout) = 0;
  virtual void do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) = 0;

 private:
  std::chrono::milliseconds timeout_;
};

}  // namespace tessera::comm
