#include "tessera/comm/elastic_rendezvous.h"

#include <algorithm>
#include <string>
#include <thread>
#include <utility>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kLatest = "elastic/latest";      // the newest round closed
constexpr const char* kDone = "elastic/done";          // the job finished
constexpr const char* kFatal = "elastic/fatal";        // why the job cannot go on
constexpr const char* kFailures = "elastic/failures";  // rounds that ended in a failure

std::string round_key(std::int64_t k, const std::string& name) {
  return "elastic/r" + std::to_string(k) + "/" + name;
}

std::int64_t to_int(const std::string& text, const std::string& key) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): reported below
  }
  throw FormatError("elastic rendezvous: store key " + key + " holds \"" + text +
                    "\", not an integer");
}

std::string seconds(std::chrono::milliseconds t) {
  return detail::concat(static_cast<double>(t.count()) / 1000.0, " s");
}

}  // namespace

ElasticRendezvous::ElasticRendezvous(Store& store, ElasticOptions options)
    : store_(store), options_(std::move(options)) {
  if (options_.min_nodes < 1 || options_.max_nodes < options_.min_nodes) {
    throw ValueError(detail::concat("elastic rendezvous: nodes ", options_.min_nodes, ":",
                                    options_.max_nodes,
                                    " is not a range MIN:MAX with 1 <= MIN <= MAX"));
  }
}

std::optional<std::string> ElasticRendezvous::value(const std::string& key) {
  if (!store_.check({key})) return std::nullopt;
  return store_.get(key);
}

std::optional<ElasticRound> ElasticRendezvous::join(int nproc) {
  if (nproc < 1) {
    throw ValueError(detail::concat("elastic rendezvous: nproc ", nproc, " is not >= 1"));
  }
  if (next_ < 0) {
    const std::optional<std::string> latest = value(kLatest);
    next_ = latest ? to_int(*latest, kLatest) + 1 : 0;
  }
  for (;;) {
    const std::int64_t k = next_;
    if (value(kDone)) return std::nullopt;
    const int index = static_cast<int>(store_.add(round_key(k, "arrived"), 1));
    store_.set(round_key(k, "nproc/" + std::to_string(index)), std::to_string(nproc));
    if (member_of_previous_) (void)store_.add(round_key(k, "survivors"), 1);
    const Clock::time_point since = Clock::now();
    for (;;) {
      if (value(kDone)) return std::nullopt;
      if (const std::optional<std::string> fatal = value(kFatal)) {
        throw Error("elastic job: ended by a failure that restarting cannot mend: " + *fatal);
      }
      std::optional<int> closed;
      if (const std::optional<std::string> text = value(round_key(k, "closed"))) {
        closed = static_cast<int>(to_int(*text, round_key(k, "closed")));
      } else {
        closed = try_close(k, since);
      }
      if (closed && index <= *closed) return membership(k, index, *closed);
      if (closed) break;  // came too late: wait in the next round
      std::this_thread::sleep_for(options_.poll);
    }
    next_ = k + 1;
    member_of_previous_ = false;
  }
}

// Closes round k when the rules in the header allow, and returns how many nodes it holds.
std::optional<int> ElasticRendezvous::try_close(std::int64_t k, Clock::time_point since) {
  int previous = 0;  // nodes of round k - 1
  bool previous_running = false;
  int survivors = 0;
  if (k > 0) {
    if (const std::optional<std::string> text = value(round_key(k - 1, "closed"))) {
      previous = static_cast<int>(to_int(*text, round_key(k - 1, "closed")));
      survivors = static_cast<int>(store_.add(round_key(k, "survivors"), 0));
      previous_running = survivors < previous && !value(round_key(k - 1, "failed"));
    }
  }
  // Read after the survivors: an agent counts itself arrived before it counts itself a survivor,
  // so every survivor counted here is among the arrivals (and gets a place in the round).
  const int arrived = static_cast<int>(store_.add(round_key(k, "arrived"), 0));
  const auto waited = Clock::now() - since;
  bool ready = arrived >= options_.max_nodes;
  if (!ready && arrived >= options_.min_nodes && !previous_running) {
    ready = (previous > 0 && survivors >= previous) || waited >= options_.last_call;
  }
  if (!ready) {
    // A spare waiting for a full running round waits as long as the round runs.
    if (!previous_running && waited >= options_.timeout) {
      throw TimeoutError(detail::concat(
          "elastic rendezvous round ", k, " on the ", store_.description(), ": ", arrived,
          " of at least ", options_.min_nodes, " node(s) came within ", seconds(options_.timeout)));
    }
    return std::nullopt;
  }
  const std::string size = std::to_string(std::min(arrived, options_.max_nodes));
  const std::string held = store_.compare_set(round_key(k, "closed"), "", size);
  if (held == size) store_.set(kLatest, std::to_string(k));
  return static_cast<int>(to_int(held, round_key(k, "closed")));
}

ElasticRound ElasticRendezvous::membership(std::int64_t k, int index, int closed) {
  ElasticRound round;
  round.number = k;
  round.node_rank = index - 1;
  round.nnodes = closed;
  for (int i = 1; i <= closed; ++i) {
    const std::string key = round_key(k, "nproc/" + std::to_string(i));
    const int n = static_cast<int>(to_int(store_.get(key, options_.timeout), key));
    if (i < index) round.first_rank += n;
    if (i == index) round.nproc = n;
    round.world_size += n;
  }
  const std::optional<std::string> failures = value(kFailures);
  round.restarts = failures ? static_cast<int>(to_int(*failures, kFailures)) : 0;
  if (round.restarts > options_.max_restarts) {
    const std::optional<std::string> last =
        k > 0 ? value(round_key(k - 1, "failed")) : std::nullopt;
    throw Error(detail::concat("elastic job: failed ", round.restarts,
                               " time(s), more than --max-restarts ", options_.max_restarts,
                               " allows; the last failure: ", last.value_or("(not recorded)")));
  }
  next_ = k + 1;
  member_of_previous_ = true;
  return round;
}

std::optional<RoundEnd> ElasticRendezvous::should_end(const ElasticRound& round) {
  if (value(kDone)) return RoundEnd{RoundEnd::Kind::kDone, "the job finished"};
  if (std::optional<std::string> fatal = value(kFatal)) {
    return RoundEnd{RoundEnd::Kind::kFatal, std::move(*fatal)};
  }
  if (std::optional<std::string> failed = value(round_key(round.number, "failed"))) {
    return RoundEnd{RoundEnd::Kind::kFailed, std::move(*failed)};
  }
  if (round.nnodes < options_.max_nodes) {
    const std::int64_t waiting = store_.add(round_key(round.number + 1, "arrived"), 0);
    if (waiting > 0) {
      return RoundEnd{RoundEnd::Kind::kJoin, detail::concat(waiting, " node(s) wait to join")};
    }
  }
  return std::nullopt;
}

void ElasticRendezvous::report_failure(const ElasticRound& round, const std::string& reason,
                                       bool fatal) {
  if (fatal) store_.set(kFatal, reason);
  const std::string held = store_.compare_set(round_key(round.number, "failed"), "", reason);
  if (held == reason) (void)store_.add(kFailures, 1);
}

void ElasticRendezvous::report_done() { store_.set(kDone, "1"); }

void ElasticRendezvous::leave(const ElasticRound& round) {
  (void)store_.add(round_key(round.number, "left"), 1);
}

void ElasticRendezvous::wait_for_others_to_leave(const ElasticRound& round,
                                                 std::chrono::milliseconds timeout) {
  const Clock::time_point until = Clock::now() + timeout;
  while (store_.add(round_key(round.number, "left"), 0) < round.nnodes && Clock::now() < until) {
    std::this_thread::sleep_for(options_.poll);
  }
}

std::int64_t ElasticRendezvous::last_step(std::int64_t number) {
  std::int64_t newest = -1;
  for (int reporter = 0; reporter < kStepReporters; ++reporter) {
    const std::string key = round_key(number, "step/" + std::to_string(reporter));
    const std::optional<std::string> step = value(key);
    if (step) newest = std::max(newest, to_int(*step, key));
  }
  return newest;
}

void ElasticRendezvous::publish_step(Store& store, std::int64_t number, int reporter,
                                     std::int64_t step) {
  store.set(round_key(number, "step/" + std::to_string(reporter)), std::to_string(step));
}

void ElasticRendezvous::publish_resumed(Store& store, std::int64_t number, std::int64_t step) {
  store.set(round_key(number, "resumed"), std::to_string(step));
}

std::optional<std::int64_t> ElasticRendezvous::resumed_step(std::int64_t number) {
  const std::string key = round_key(number, "resumed");
  const std::optional<std::string> step = value(key);
  if (!step) return std::nullopt;
  return to_int(*step, key);
}

}  // namespace tessera::comm
