#include "progress_tracker.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <sstream>

namespace tessera::comm {

struct ProgressTracker::Shared {
  std::shared_ptr<Store> store;
  std::string key;
  std::chrono::milliseconds poll;

  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;
  bool finished = false;  // the thread has made its last write and returns
  Position position;
  CallSignature call;
  std::uint64_t version = 0;    // bumped by every change of position
  std::uint64_t urgent = 0;     // a version to write at once (failure, shutdown)
  std::uint64_t attempted = 0;  // the last version the thread tried to write

  [[nodiscard]] Position snapshot() const {
    Position p = position;
    p.call = position.entered == 0 ? "none" : call.describe();
    return p;
  }
};

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

// "<entered> <completed> <state> <failed> <call>"; the call, last, may contain spaces.
std::string encode(const ProgressTracker::Position& p) {
  std::ostringstream out;
  out << p.entered << " " << p.completed << " " << state_name(p.state) << " " << p.failed << " "
      << p.call;
  return out.str();
}

bool decode(const std::string& text, ProgressTracker::Position* p) {
  using State = ProgressTracker::State;
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

}  // namespace

ProgressTracker::ProgressTracker(std::shared_ptr<Store> store, std::string key_prefix, int rank,
                                 int size, std::chrono::milliseconds timeout)
    : store_(std::move(store)),
      key_prefix_(std::move(key_prefix)),
      rank_(rank),
      size_(size),
      // A twentieth of the timeout leaves the record fresh long before anyone times out; the
      // bounds keep a short test timeout cheap and a long one responsive.
      poll_(std::clamp(timeout / 20, std::chrono::milliseconds(5), std::chrono::milliseconds(250))),
      shared_(std::make_shared<Shared>()) {
  shared_->store = store_;
  shared_->key = key(rank_);
  shared_->poll = poll_;
  store_->set(shared_->key, encode(shared_->snapshot()));
  // The thread holds the shared state, not the tracker: stop() may leave it behind.
  thread_ = std::thread([s = shared_]() noexcept {
    pthread_setname_np(pthread_self(), "tessera-progres");
    std::uint64_t written = 0;
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(s->mutex);
    for (;;) {
      s->changed.wait_for(lock, s->poll, [&] { return s->stopping || s->urgent > s->attempted; });
      const bool now = s->stopping || s->urgent > s->attempted;
      if ((now || s->version == seen) && s->version != written) {
        const std::string text = encode(s->snapshot());
        const std::uint64_t version = s->version;
        lock.unlock();
        try {
          s->store->set(s->key, text);
          written = version;
        } catch (...) {  // NOLINT(bugprone-empty-catch)
          // The store is unreachable: peers will report this rank's record as unknown.
        }
        lock.lock();
        s->attempted = version;
        s->changed.notify_all();
      }
      if (s->stopping && s->attempted >= s->version) {
        s->finished = true;
        s->changed.notify_all();
        return;
      }
      seen = s->version;
    }
  });
}

ProgressTracker::~ProgressTracker() { stop(); }

std::string ProgressTracker::key(int rank) const {
  return key_prefix_ + "/progress/" + std::to_string(rank);
}

void ProgressTracker::enter(std::uint64_t seq, const CallSignature& call) {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  shared_->position.entered = seq;
  shared_->call = call;  // described by the publisher, only when written: formatting is not free
  ++shared_->version;
}

void ProgressTracker::complete(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  shared_->position.completed = seq;
  ++shared_->version;
}

void ProgressTracker::record_failure(std::uint64_t seq, bool timed_out) noexcept {
  Shared& s = *shared_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.position.state != State::kRunning || s.stopping) return;  // the first failure counts
  s.position.state = timed_out ? State::kTimedOut : State::kFailed;
  s.position.failed = seq;
  s.urgent = ++s.version;
  s.changed.notify_all();
  s.changed.wait_for(lock, kStoreGrace, [&] { return s.attempted >= s.urgent; });
}

void ProgressTracker::stop() noexcept {
  if (!thread_.joinable()) return;  // stopped before (joined, or left behind on a hung store)
  Shared& s = *shared_;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    if (!s.stopping) {
      s.stopping = true;
      if (s.position.state == State::kRunning) s.position.state = State::kClosed;
      ++s.version;
      s.changed.notify_all();
    }
    s.changed.wait_for(lock, kStoreGrace, [&] { return s.finished; });
  }
  bool finished = false;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    finished = s.finished;
  }
  if (finished) {
    thread_.join();
  } else {
    thread_.detach();  // stuck on a store that does not answer; it owns what it uses
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
      std::lock_guard<std::mutex> lock(shared_->mutex);
      record.position = shared_->snapshot();
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
