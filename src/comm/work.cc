#include "tessera/comm/work.h"

#include "async_work.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {

Work::~Work() = default;

void AsyncWork::set_inline_runner(std::function<bool()> runner,
                                  std::chrono::milliseconds op_timeout) {
  runner_ = std::move(runner);
  op_timeout_ = op_timeout;
}

void AsyncWork::try_run_inline(std::chrono::milliseconds timeout) {
  if (!runner_ || timeout < op_timeout_ || is_completed()) return;
  runner_();  // completes this Work when it runs the operation
}

void AsyncWork::wait(std::chrono::milliseconds timeout) {
  try_run_inline(timeout);
  std::unique_lock<std::mutex> lock(mutex_);
  if (!done_cv_.wait_for(lock, timeout, [&] { return done_; })) {
    throw TimeoutError(detail::concat("wait for ", description_, ": not completed after ",
                                      timeout.count(),
                                      " ms (the operation goes on until its own deadline)"));
  }
  if (error_) std::rethrow_exception(error_);
}

void AsyncWork::wait() {
  try_run_inline(std::chrono::milliseconds::max());
  // No deadline here: the backend completes or fails every operation by its own deadline.
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return done_; });
  if (error_) std::rethrow_exception(error_);
}

bool AsyncWork::is_completed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void AsyncWork::complete() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  done_cv_.notify_all();
}

void AsyncWork::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(error);
    done_ = true;
  }
  done_cv_.notify_all();
}

}  // namespace tessera::comm
