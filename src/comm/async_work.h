#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>

#include "tessera/comm/work.h"

namespace tessera::comm {

// The Work every backend hands out: the backend's thread calls complete() or fail() exactly once;
// waiters block on a condition variable. Thread-safe.
class AsyncWork final : public Work {
 public:
  explicit AsyncWork(std::string description) : description_(std::move(description)) {}

  void wait(std::chrono::milliseconds timeout) override;
  void wait() override;
  [[nodiscard]] bool is_completed() const override;
  [[nodiscard]] std::string description() const override { return description_; }

  void complete();
  void fail(std::exception_ptr error);

 private:
  const std::string description_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace tessera::comm
