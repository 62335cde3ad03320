#include "op_worker.h"

#include <pthread.h>
#include <sched.h>

#include "tessera/comm/errors.h"

namespace tessera::comm {

OpWorker::OpWorker(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { run(); });
}

OpWorker::~OpWorker() { stop(); }

std::shared_ptr<OpWorker::Task> OpWorker::post(std::function<void()> fn) {
  auto task = std::make_shared<Task>(std::move(fn));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return nullptr;
    tasks_.push_back(task);
  }
  ready_.notify_all();
  return task;
}

bool OpWorker::run_inline(const std::shared_ptr<Task>& task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (running_ || tasks_.empty() || tasks_.front() != task) return false;
    tasks_.pop_front();
    running_ = true;
  }
  task->fn_();
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
    more = !tasks_.empty() || stopping_;
  }
  // The worker may go on with the tasks behind it; with none, waking it would only cost a
  // context switch on a core another rank may be using.
  if (more) ready_.notify_all();
  return true;
}

void OpWorker::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OpWorker::run() noexcept {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ready_.wait(lock, [&] { return (stopping_ && !running_) || (!tasks_.empty() && !running_); });
    if (tasks_.empty()) return;  // stopping, and everything posted has run
    // Woken by post(), this thread may have been placed on the poster's core and preempted it.
    // One yield lets a poster that waits at once take the task inline (run_inline) instead of
    // two threads trading the core; a poster that goes on computing leaves it to this thread.
    // Seen with perf on 2 cores, 2 ranks, allreduce then wait: without the yield, which thread
    // ran them depended on timing (in one build this one ran most); with it the callers did
    // (97% of the allreduce time on their threads).
    lock.unlock();
    sched_yield();
    lock.lock();
    if (tasks_.empty() || running_) continue;
    std::shared_ptr<Task> task = std::move(tasks_.front());
    tasks_.pop_front();
    running_ = true;
    lock.unlock();
    task->fn_();
    task.reset();
    lock.lock();
    running_ = false;
  }
}

void post_work(const std::shared_ptr<OpWorker>& worker, const std::shared_ptr<AsyncWork>& work,
               std::function<void()> run, std::chrono::milliseconds op_timeout) {
  auto task = worker->post(std::move(run));
  if (!task) {
    work->fail(
        std::make_exception_ptr(CommError(work->description() + ": the group is shut down")));
    return;
  }
  work->set_inline_runner(
      [weak_worker = std::weak_ptr<OpWorker>(worker),
       weak_task = std::weak_ptr<OpWorker::Task>(task)] {
        auto w = weak_worker.lock();
        auto t = weak_task.lock();
        return w && t && w->run_inline(t);
      },
      op_timeout);
}

}  // namespace tessera::comm
