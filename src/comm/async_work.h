#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
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

  // Lets a waiter run the operation itself when it has not started (OpWorker::run_inline):
  // `runner` returns whether it ran it. A wait(timeout) shorter than `op_timeout` never does,
  // since the operation may take up to its own timeout. Call before handing the Work out.
  void set_inline_runner(std::function<bool()> runner, std::chrono::milliseconds op_timeout);

 private:
  void try_run_inline(std::chrono::milliseconds timeout);

  const std::string description_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
  std::function<bool()> runner_;
  std::chrono::milliseconds op_timeout_{0};
};

}  // namespace tessera::comm
