#pragma once

#include <mutex>
#include <string>

namespace tessera::comm {

// The first failure of a group: once set, every later operation fails at once repeating it.
// Thread-safe (the caller's thread, the worker and helper threads all look).
class FirstFailure {
 public:
  // Empty while nothing has failed.
  [[nodiscard]] std::string reason() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reason_;
  }
  // Keeps `reason` unless a failure is already recorded.
  void record(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reason_.empty()) reason_ = reason;
  }

 private:
  mutable std::mutex mutex_;
  std::string reason_;
};

}  // namespace tessera::comm
