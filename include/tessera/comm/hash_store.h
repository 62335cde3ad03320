#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/store.h"
#include "tessera/comm/timeouts.h"

namespace tessera::comm {

// A Store in this process's memory, for ranks run as threads (tests, single-process tools).
// Thread-safe; share one instance (through std::shared_ptr) among the ranks.
class HashStore final : public Store {
 public:
  explicit HashStore(std::chrono::milliseconds timeout = kDefaultTimeout);

  void set(const std::string& key, std::string_view value) override;
  [[nodiscard]] bool check(const std::vector<std::string>& keys) override;
  std::int64_t add(const std::string& key, std::int64_t delta) override;
  std::string compare_set(const std::string& key, std::string_view expected,
                          std::string_view desired) override;
  bool remove(const std::string& key) override;
  [[nodiscard]] std::string description() const override;

 protected:
  std::string do_get(const std::string& key, std::chrono::milliseconds timeout) override;
  void do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace tessera::comm
