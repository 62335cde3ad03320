#include "elastic_reporter.h"

#include <utility>

#include "tessera/comm/elastic_rendezvous.h"
#include "tessera/core/env.h"
#include "tessera/core/error.h"

namespace tessera::cli {

ElasticReporter::ElasticReporter(const comm::JobEnv& job) : attempt_(job.attempt), rank_(job.rank) {
  if (job.rank >= comm::ElasticRendezvous::kStepReporters || !env_string("TESSERA_ELASTIC")) {
    return;
  }
  store_ = std::make_unique<comm::TcpStore>(
      comm::TcpStoreOptions{.host = job.store_host, .port = job.store_port, .token = job.token});
  thread_ = std::thread([this] { publish_loop(); });
}

ElasticReporter::~ElasticReporter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_one();
  thread_.join();
}

std::function<void(int64_t)> ElasticReporter::on_step() {
  if (!store_) return nullptr;
  return [this](int64_t step) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (first_ < 0) first_ = step;
      step_ = step;
    }
    changed_.notify_one();
  };
}

void ElasticReporter::publish_loop() {
  std::int64_t sent_first = -1;
  std::int64_t sent = -1;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || step_ != sent || first_ != sent_first; });
    const bool last = stopping_;
    const std::int64_t first = first_;
    const std::int64_t step = step_;
    lock.unlock();
    try {
      if (first >= 0 && first != sent_first) {
        comm::ElasticRendezvous::publish_resumed(*store_, attempt_, first);
        sent_first = first;
      }
      if (step != sent) {
        comm::ElasticRendezvous::publish_step(*store_, attempt_, rank_, step);
        sent = step;
      }
    } catch (const Error&) {
      return;  // the store is gone: nobody is listening
    }
    if (last) return;
    lock.lock();
    // At most every kEvery, but a worker that stops says so at once: its next round waits on it.
    changed_.wait_for(lock, kEvery, [&] { return stopping_; });
  }
}

}  // namespace tessera::cli
