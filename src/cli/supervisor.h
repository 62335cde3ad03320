#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "worker_process.h"

namespace tessera::cli {

struct SupervisorOptions {
  // After the first failure the others get this long to fail on their own, then SIGTERM, then
  // after the same again SIGKILL.
  std::chrono::milliseconds grace{std::chrono::seconds(5)};
  // Ranks whose failure the others survive; ranks started again by `restart` (its argument: the
  // restarts so far, this one included), at most max_restarts times in all.
  std::vector<int> expendable_ranks = {};
  std::vector<int> restartable_ranks = {};
  int max_restarts = 0;
  std::function<void(Worker&, int)> restart = nullptr;
  // Asked every `poll` while the workers run: a reason to stop them all though none failed here
  // (an elastic round that ended on another host). Workers stopped so are not failures.
  std::function<std::optional<std::string>()> stop_check = nullptr;
  // Asked every `poll` too: ranks to kill as hung (a parameter-server job's, hung_workers.h),
  // whose death is then handled as any failure.
  std::function<std::vector<int>()> hung_ranks = nullptr;
  std::chrono::milliseconds poll{std::chrono::milliseconds(200)};
  // Told of the first failure at once, before the others are stopped.
  std::function<void(const Worker&)> on_failure = nullptr;
};

// Watches the workers until every one has exited or stands by (a worker with a channel whose
// group broke: agent_channel.h; asked to, when stop_check gives a reason): passes their output on,
// forwards the signals the launcher gets (a second one kills them), and after the first failure (or
// a stop_check reason) gives the others `grace` to exit on their own, then SIGTERM, then after
// `grace` again SIGKILL.
class Supervisor {
 public:
  Supervisor(std::vector<Worker>& workers, int signal_fd, SupervisorOptions options);

  void run();

  // The index of the first worker that failed, the signal that interrupted the launcher (0:
  // none), and the reason stop_check gave (empty: none).
  [[nodiscard]] std::optional<std::size_t> first_failure() const { return first_failure_; }
  [[nodiscard]] int interrupted_by() const { return interrupted_by_; }
  [[nodiscard]] const std::string& stopped_for() const { return stopped_for_; }

 private:
  enum class Phase { kRunning, kDraining, kTerminating, kKilled };

  void enter(Phase phase);
  // Every worker but those standing by.
  void signal_all(int signal);
  // Reads what w's channel holds: a worker standing by.
  void read_channel(Worker& w);
  void wait_and_pass_output();
  void read_signals();
  void reap();
  void exited(std::size_t i, int status);
  void kill_hung();
  void check_stop();
  bool escalate();

  std::vector<Worker>& workers_;
  const int signal_fd_;
  const SupervisorOptions options_;
  int restarts_ = 0;
  Phase phase_ = Phase::kRunning;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point next_check_{};  // the first check is due at once
  std::optional<std::size_t> first_failure_;
  int interrupted_by_ = 0;
  std::string stopped_for_;
};

// The launcher's exit code, with a summary of every worker on stderr when it is not 0: the
// failed worker's code (128 + signal for a signal), else 128 + the signal that interrupted it.
// `final`: the launcher exits with it (said last); else an elastic agent goes on to a new round.
[[nodiscard]] int report(const std::vector<Worker>& workers,
                         std::optional<std::size_t> first_failure, int interrupted_by,
                         bool final = true);

// Writes "tessera launcher: <text>" to stderr.
void say(const std::string& text);

}  // namespace tessera::cli
