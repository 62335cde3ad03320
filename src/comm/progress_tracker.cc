#include "progress_tracker.h"

#include <pthread.h>

#include <algorithm>
#include <sstream>

namespace tessera::comm {
namespace {

const char* state_name(ProgressTracker::State state) {
  switch (state) {
    case ProgressTracker::State::kRunning:
      return "running";
    case ProgressTracker::State::kTimedOut:
      return "timedout";
    case ProgressTracker::State::kFailed:
      return "failed";
    case ProgressTracker::State::kClosed:
      return "closed";
  }
  return "running";
}

}  // namespace

ProgressTracker::ProgressTracker(std::shared_ptr<Store> store, std::string key_prefix, int rank,
                                 int size, std::chrono::milliseconds timeout)
    : store_(std::move(store)),
      key_prefix_(std::move(key_prefix)),
      rank_(rank),
      size_(size),
      // A twentieth of the timeout leaves the record fresh long before anyone times out; the
      // bounds keep a short test timeout cheap and a long one responsive.
      poll_(
          std::clamp(timeout / 20, std::chrono::milliseconds(5), std::chrono::milliseconds(250))) {
  store_->set(key(rank_), encode(snapshot_locked()));
  thread_ = std::thread([this] { run(); });
}

ProgressTracker::~ProgressTracker() { stop(); }

std::string ProgressTracker::key(int rank) const {
  return key_prefix_ + "/progress/" + std::to_string(rank);
}

// "<entered> <completed> <state> <failed> <call>"; the call, last, may contain spaces.
std::string ProgressTracker::encode(const Position& p) {
  std::ostringstream out;
  out << p.entered << " " << p.completed << " " << state_name(p.state) << " " << p.failed << " "
      << p.call;
  return out.str();
}

bool ProgressTracker::decode(const std::string& text, Position* p) {
  std::istringstream in(text);
  std::string state;
  if (!(in >> p->entered >> p->completed >> state >> p->failed)) return false;
  p->state = state == "timedout" ? State::kTimedOut
             : state == "failed" ? State::kFailed
             : state == "closed" ? State::kClosed
                                 : State::kRunning;
  in >> std::ws;
  std::getline(in, p->call);
  return true;
}

ProgressTracker::Position ProgressTracker::snapshot_locked() const {
  Position p = position_;
  p.call = position_.entered == 0 ? "none" : call_.describe();
  return p;
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

void ProgressTracker::record_failure(std::uint64_t seq, bool timed_out) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (position_.state != State::kRunning) return;  // the first failure is the one to report
    position_.state = timed_out ? State::kTimedOut : State::kFailed;
    position_.failed = seq;
    ++version_;
  }
  publish_now();
}

void ProgressTracker::publish_now() noexcept {
  std::string text;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    text = encode(snapshot_locked());
  }
  try {
    store_->set(key(rank_), text);
  } catch (...) {  // NOLINT(bugprone-empty-catch)
    // The store is unreachable: the peers' diagnosis will say this rank's record is unknown.
  }
}

void ProgressTracker::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    if (position_.state == State::kRunning) position_.state = State::kClosed;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  publish_now();
}

void ProgressTracker::run() noexcept {
  pthread_setname_np(pthread_self(), "tessera-progres");
  std::uint64_t published = 0;
  std::uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (stop_cv_.wait_for(lock, poll_, [&] { return stopping_; })) return;
    if (version_ == seen && version_ != published) {
      const std::string text = encode(snapshot_locked());
      const std::uint64_t version = version_;
      lock.unlock();
      try {
        store_->set(key(rank_), text);
        published = version;
      } catch (...) {  // NOLINT(bugprone-empty-catch): the next poll retries
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
      record.position = snapshot_locked();
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
