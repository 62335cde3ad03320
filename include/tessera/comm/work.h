#pragma once

#include <chrono>
#include <string>

namespace tessera::comm {

// Handle of an operation issued on a ProcessGroup. The operation's buffers must stay alive and
// untouched until it completes (wait() returned or is_completed() is true). Thread-safe: any
// thread may wait on a handle, several threads may wait on the same one.
class Work {
 public:
  Work() = default;
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  virtual ~Work();

  // Blocks until the operation completes; rethrows its error (TimeoutError, CommError, ...) if it
  // failed. Throws TimeoutError naming the operation when `timeout` passes first: the operation
  // goes on and can be waited again.
  virtual void wait(std::chrono::milliseconds timeout) = 0;

  // Blocks until the operation completes or fails. Every operation ends by its own deadline
  // (GroupOptions::timeout), so this returns or throws within that bound. A backend may run an
  // operation that has not started yet on the waiting thread (no hand-off to its own thread);
  // it does so only where issue order allows and the wait has no shorter deadline.
  virtual void wait() = 0;

  // True once the operation finished, successfully or not (wait() then returns or throws at once).
  [[nodiscard]] virtual bool is_completed() const = 0;

  // What the operation is, for messages: "allreduce #12 on group dp".
  [[nodiscard]] virtual std::string description() const = 0;
};

}  // namespace tessera::comm
