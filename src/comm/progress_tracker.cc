#include "progress_tracker.h"

#include <pthread.h>

#include <algorithm>
#include <sstream>

namespace tessera::comm {

ProgressTracker::ProgressTracker(std::shared_ptr<Store> store, std::string key_prefix, int rank,
                                 int size, std::chrono::milliseconds timeout)
    : store_(std::move(store)),
      key_prefix_(std::move(key_prefix)),
      rank_(rank),
      size_(size),
      // A twentieth of the timeout leaves the record fresh long before anyone times out; the
      // bounds keep a short test timeout cheap and a long one responsive.
      poll_(std::clamp(timeout / 20, std::chrono::milliseconds(5),
                       std::chrono::milliseconds(250))) {
  position_.call = "none";
  store_->set(key(rank_), encode(position_));
  thread_ = std::thread([this] { run(); });
}

ProgressTracker::~ProgressTracker() { stop(); }

std::string ProgressTracker::key(int rank) const {
  return key_prefix_ + "/progress/" + std::to_string(rank);
}

std::string ProgressTracker::encode(const Position& p) {
  return std::to_string(p.entered) + " " + std::to_string(p.completed) + " " + p.call;
}

bool ProgressTracker::decode(const std::string& text, Position* p) {
  std::istringstream in(text);
  if (!(in >> p->entered >> p->completed)) return false;
  in >> std::ws;
  std::getline(in, p->call);
  return true;
}

void ProgressTracker::enter(std::uint64_t seq, const CallSignature& call) {
  std::lock_guard<std::mutex> lock(mutex_);
  position_.entered = seq;
  call_ = call;  // described lazily by the publisher: formatting is not free
  ++version_;
}

void ProgressTracker::complete(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  position_.completed = seq;
  ++version_;
}

void ProgressTracker::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressTracker::run() noexcept {
  pthread_setname_np(pthread_self(), "tessera-progres");
  std::uint64_t published = 0;
  std::uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (stop_cv_.wait_for(lock, poll_, [&] { return stopping_; })) return;
    if (version_ == seen && version_ != published) {
      Position snapshot = position_;
      snapshot.call = position_.entered == 0 ? "none" : call_.describe();
      const std::uint64_t version = version_;
      lock.unlock();
      try {
        store_->set(key(rank_), encode(snapshot));
        published = version;
      } catch (...) {  // NOLINT(bugprone-empty-catch)
        // The store is unreachable: the next poll retries; a failure diagnosis will say the
        // records are unknown.
      }
      lock.lock();
    }
    seen = version_;
  }
}

std::vector<ProgressTracker::RankRecord> ProgressTracker::read_all(
    std::chrono::milliseconds timeout) {
  std::vector<RankRecord> records(static_cast<std::size_t>(size_));
  bool store_ok = true;  // after one failed read, do not wait `timeout` for each of the others
  for (int r = 0; r < size_; ++r) {
    RankRecord& record = records[static_cast<std::size_t>(r)];
    record.rank = r;
    if (r == rank_) {
      std::lock_guard<std::mutex> lock(mutex_);
      record.position = position_;
      record.position.call = position_.entered == 0 ? "none" : call_.describe();
      record.known = true;
      continue;
    }
    if (!store_ok) continue;
    try {
      record.known = decode(store_->get(key(r), timeout), &record.position);
    } catch (...) {
      store_ok = false;
    }
  }
  return records;
}

}  // namespace tessera::comm
