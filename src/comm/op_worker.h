#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace tessera::comm {

// One thread that runs posted tasks one at a time, in the order posted: a group's operations
// complete in issue order while the caller goes on. Tasks must not throw (they report through
// their Work). post() is thread-safe.
class OpWorker {
 public:
  // `name` names the thread (at most 15 characters are kept) for debuggers and top.
  explicit OpWorker(std::string name);
  OpWorker(const OpWorker&) = delete;
  OpWorker& operator=(const OpWorker&) = delete;
  ~OpWorker();

  void post(std::function<void()> task);

  // Runs the tasks already posted, then joins the thread. Idempotent; post() afterwards drops
  // the task (the owner refuses new operations before stopping).
  void stop() noexcept;

 private:
  void run() noexcept;

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::string name_;
  std::thread thread_;
};

}  // namespace tessera::comm
