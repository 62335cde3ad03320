#include "supervisor.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "tessera/core/error.h"

namespace tessera::cli {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool contains(const std::vector<int>& ranks, int rank) {
  return std::find(ranks.begin(), ranks.end(), rank) != ranks.end();
}

}  // namespace

void say(const std::string& text) { write_all(STDERR_FILENO, "tessera launcher: " + text + "\n"); }

Supervisor::Supervisor(std::vector<Worker>& workers, int signal_fd, SupervisorOptions options)
    : workers_(workers), signal_fd_(signal_fd), options_(std::move(options)) {}

void Supervisor::run() {
  while (std::any_of(workers_.begin(), workers_.end(),
                     [](const Worker& w) { return w.running && !w.standing_by; })) {
    wait_and_pass_output();
    reap();
    check_stop();
    // A stopped worker cannot exit on its own: waiting for it only delays the summary.
    if (phase_ == Phase::kDraining &&
        std::all_of(workers_.begin(), workers_.end(),
                    [](const Worker& w) { return !w.running || w.stopped || w.standing_by; })) {
      deadline_ = Clock::now();
    }
    if (Clock::now() >= deadline_ && !escalate()) break;
  }
}

void Supervisor::enter(Phase phase) {
  phase_ = phase;
  deadline_ = Clock::now() + options_.grace;
}

void Supervisor::signal_all(int signal) {
  for (Worker& w : workers_) {
    if (!w.standing_by) send_signal(w, signal);
  }
}

void Supervisor::read_channel(Worker& w) {
  char buffer[512];
  const ssize_t n = ::read(w.channel.get(), buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    w.channel.reset();  // the worker is exiting
    return;
  }
  w.channel_partial.append(buffer, static_cast<std::size_t>(n));
  for (std::size_t end; (end = w.channel_partial.find('\n')) != std::string::npos;) {
    const std::string line = w.channel_partial.substr(0, end);
    w.channel_partial.erase(0, end + 1);
    if (line.rfind("standby ", 0) != 0 || w.standing_by) continue;
    w.standing_by = true;
    w.standby_reason = line.substr(8);
    // The others get the grace to stand by too, or to fail; then those left are stopped. A
    // spare stands by once ready.
    if (phase_ == Phase::kRunning && !w.spare) enter(Phase::kDraining);
  }
}

// Polls the workers' pipes and the signal fd until something arrives, the deadline passes or the
// next stop_check is due.
void Supervisor::wait_and_pass_output() {
  std::vector<pollfd> fds;
  enum class Source { kOut, kErr, kChannel };
  std::vector<std::pair<Worker*, Source>> owners;  // for fds[1...]
  fds.push_back({signal_fd_, POLLIN, 0});
  for (Worker& w : workers_) {
    for (auto [fd, source] : {std::pair{&w.out, Source::kOut}, std::pair{&w.err, Source::kErr},
                              std::pair{&w.channel, Source::kChannel}}) {
      if (!fd->valid()) continue;
      fds.push_back({fd->get(), POLLIN, 0});
      owners.emplace_back(&w, source);
    }
  }
  Clock::time_point until = deadline_;
  if ((options_.stop_check || options_.hung_ranks) && phase_ == Phase::kRunning) {
    until = std::min(until, next_check_);
  }
  int wait_ms = -1;
  if (until != Clock::time_point::max()) {
    auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
    wait_ms = static_cast<int>(std::clamp<long long>(left + 1, 0, 60'000));
  }
  int ready = ::poll(fds.data(), fds.size(), wait_ms);
  if (ready < 0 && errno != EINTR) throw Error("launcher: poll: " + std::string(strerror(errno)));
  for (std::size_t k = 1; ready > 0 && k < fds.size(); ++k) {
    if (fds[k].revents == 0) continue;
    auto [w, source] = owners[k - 1];
    if (source == Source::kErr) {
      drain(*w, w->err, STDERR_FILENO, w->err_partial);
    } else if (source == Source::kOut) {
      drain(*w, w->out, STDOUT_FILENO, w->out_partial);
    } else {
      read_channel(*w);
    }
  }
  if (ready > 0 && fds[0].revents != 0) read_signals();
}

void Supervisor::read_signals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    const int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGCHLD) continue;  // reaped next
    if (phase_ == Phase::kRunning || phase_ == Phase::kDraining) {
      if (!first_failure_) interrupted_by_ = sig;
      say("got " + signal_name(sig) + "; passing it on to the workers (again to kill them)");
      signal_all(sig);
      enter(Phase::kTerminating);
    } else {
      say("got " + signal_name(sig) + " again; killing the workers");
      signal_all(SIGKILL);
      enter(Phase::kKilled);
    }
  }
}

void Supervisor::reap() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    Worker& w = workers_[i];
    while (w.running) {
      int status = 0;
      pid_t r = ::waitpid(w.pid, &status, WNOHANG | WUNTRACED | WCONTINUED);
      if (r == 0 || (r < 0 && errno != EINTR)) break;
      if (r < 0) continue;
      if (WIFSTOPPED(status)) {
        w.stopped = true;
      } else if (WIFCONTINUED(status)) {
        w.stopped = false;
      } else {
        exited(i, status);
      }
    }
  }
}

void Supervisor::exited(std::size_t i, int status) {
  Worker& w = workers_[i];
  w.running = false;
  w.stopped = false;
  w.status = status;
  drain(w, w.out, STDOUT_FILENO, w.out_partial);
  drain(w, w.err, STDERR_FILENO, w.err_partial);
  // Whatever is still open belongs to a process the worker started; stop listening.
  w.out.reset();
  w.err.reset();
  w.channel.reset();
  if (w.spare) {
    say("a spare (pid " + std::to_string(w.pid) + ") " + describe(w));
    return;
  }
  if (!failed(status)) return;
  // Its own failure, not the end of a job being stopped: while running, or while draining because
  // a peer stood by first (a peer can see a killed worker dying before this agent reaps it), as
  // long as no failure came before and no signal of ours killed it.
  const bool own = phase_ == Phase::kRunning ||
                   (phase_ == Phase::kDraining && !first_failure_ && w.sent_signal == 0);
  if (!own) return;
  if (restarts_ < options_.max_restarts && contains(options_.restartable_ranks, w.rank)) {
    ++restarts_;
    say("rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") failed: it " +
        describe(w) + "; starting it again (restart " + std::to_string(restarts_) + " of " +
        std::to_string(options_.max_restarts) + ")");
    options_.restart(w, restarts_);
    return;
  }
  if (contains(options_.expendable_ranks, w.rank)) {
    say("rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") failed: it " +
        describe(w) + "; the job goes on without it");
    return;
  }
  first_failure_ = i;
  if (options_.on_failure) options_.on_failure(w);
  enter(Phase::kDraining);
}

// Kills the workers their servers declared hung; exited() then sees them fail (and may start them
// again).
void Supervisor::kill_hung() {
  for (const int rank : options_.hung_ranks()) {
    for (Worker& w : workers_) {
      if (w.rank != rank || !w.running || w.spare) continue;
      say("rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) +
          ") hangs: its server heard nothing from it, not even a heartbeat, within "
          "heartbeat_timeout_s; killing it");
      send_signal(w, SIGKILL);
    }
  }
}

void Supervisor::check_stop() {
  if (phase_ != Phase::kRunning || Clock::now() < next_check_) return;
  next_check_ = Clock::now() + options_.poll;
  if (options_.hung_ranks) kill_hung();
  if (!options_.stop_check) return;
  std::optional<std::string> reason = options_.stop_check();
  if (!reason) return;
  stopped_for_ = std::move(*reason);
  // Workers that can stand by are asked to; the grace passed, those left are stopped.
  bool asked = false;
  for (Worker& w : workers_) {
    if (w.running && !w.standing_by && w.channel.valid()) {
      write_all(w.channel.get(), "pause\n");
      asked = true;
    }
  }
  if (asked) {
    enter(Phase::kDraining);
    return;
  }
  signal_all(SIGTERM);
  enter(Phase::kTerminating);
}

// The deadline passed: the next step towards an end. False when there is none left.
bool Supervisor::escalate() {
  switch (phase_) {
    case Phase::kDraining:
      signal_all(SIGTERM);
      enter(Phase::kTerminating);
      return true;
    case Phase::kTerminating:
      signal_all(SIGKILL);
      enter(Phase::kKilled);
      return true;
    case Phase::kKilled:
      say("some workers did not exit after SIGKILL; giving up on them");
      return false;
    case Phase::kRunning:
      return true;
  }
  return true;
}

int report(const std::vector<Worker>& workers, std::optional<std::size_t> first_failure,
           int interrupted_by, bool final) {
  int code = 0;
  if (first_failure) {
    const Worker& f = workers[*first_failure];
    code = exit_code_of(f.status);
    say("rank " + std::to_string(f.rank) + " (pid " + std::to_string(f.pid) + ") failed: it " +
        describe(f));
  } else if (interrupted_by != 0) {
    code = 128 + interrupted_by;
    say("interrupted by " + signal_name(interrupted_by));
  }
  if (code != 0) {
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if (first_failure && i == *first_failure) continue;
      const Worker& w = workers[i];
      say((w.spare ? "a spare (pid " + std::to_string(w.pid) + ")"
                   : "rank " + std::to_string(w.rank)) +
          " " + describe(w));
    }
    if (final) say("exit code " + std::to_string(code));
  }
  return code;
}

}  // namespace tessera::cli
