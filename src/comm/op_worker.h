#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "async_work.h"

namespace tessera::comm {

// Runs posted tasks one at a time, in the order posted, on its own thread: a group's operations
// complete in issue order while the caller goes on. Tasks must not throw (they report through
// their Work). Thread-safe.
//
// A thread that is about to block on a task's result may run it itself (run_inline) when it is
// next in line and nothing is running: issue-then-wait then costs no thread hand-off at all,
// which on a virtual machine is some 20 us each way, 5-10% of a 1 MiB allreduce.
class OpWorker {
 public:
  class Task;

  // `name` names the thread (at most 15 characters are kept) for debuggers and top.
  explicit OpWorker(std::string name);
  OpWorker(const OpWorker&) = delete;
  OpWorker& operator=(const OpWorker&) = delete;
  ~OpWorker();

  // Queues `fn`; returns its ticket for run_inline(). Dropped (nullptr) after stop().
  std::shared_ptr<Task> post(std::function<void()> fn);

  // Runs `task` on the calling thread if it is the next task and no task is running; returns
  // whether it did. Otherwise the worker thread runs it (or already has).
  bool run_inline(const std::shared_ptr<Task>& task);

  // Runs the tasks already posted, then joins the thread. Idempotent.
  void stop() noexcept;

 private:
  void run() noexcept;

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<Task>> tasks_;
  bool running_ = false;  // a task is executing, on the worker or inline
  bool stopping_ = false;
  std::string name_;
  std::thread thread_;
};

class OpWorker::Task {
 public:
  explicit Task(std::function<void()> fn) : fn_(std::move(fn)) {}

 private:
  friend class OpWorker;
  std::function<void()> fn_;
};

// Queues `run` (which completes or fails `work`) on `worker`, and lets a caller that waits for
// `work` before the worker has started it run it on its own thread (no hand-off). When the worker
// is stopped, fails `work` at once: "<description>: the group is shut down".
void post_work(const std::shared_ptr<OpWorker>& worker, const std::shared_ptr<AsyncWork>& work,
               std::function<void()> run, std::chrono::milliseconds op_timeout);

}  // namespace tessera::comm
