#pragma once

// The launcher's worker processes: starting one with its output in pipes, passing its lines on
// with a rank prefix, signalling it and describing how it ended.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::cli {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Worker {
  int rank = 0;
  int local_rank = 0;
  pid_t pid = -1;
  // Read ends of the worker's stdout and stderr, and what came after their last newline.
  Fd out;
  Fd err;
  std::string out_partial;
  std::string err_partial;
  std::string last_line;
  bool running = false;  // started and not yet reaped
  bool stopped = false;  // stopped by a signal (SIGSTOP, SIGTSTP), as last reported
  bool stopped_when_signalled = false;
  // An elastic agent's end of the worker's channel (agent_channel.h), with what came after its
  // last newline; standing_by once the worker said its group broke and it waits for a place.
  Fd channel;
  std::string channel_partial;
  bool standing_by = false;
  std::string standby_reason;
  // An elastic agent's spare: started ahead, standing by for a failed worker's place; it belongs
  // to no round until placed, and its exit is no failure.
  bool spare = false;
  int status = 0;       // waitpid status once reaped
  int sent_signal = 0;  // the last signal the launcher sent it
};

// Whether a waitpid status is a failure (a signal or a non-zero exit), and the exit code the
// launcher passes on for it (128 + signal for a signal).
[[nodiscard]] bool failed(int status);
[[nodiscard]] int exit_code_of(int status);

// "SIGTERM", or "signal N" for one without a name.
[[nodiscard]] std::string signal_name(int signal);

// How `w` ended (or that it did not), with its last line: for the launcher's summary.
[[nodiscard]] std::string describe(const Worker& w);

// Writes all of `text`, waiting out a full pipe; drops it when the reader has gone (EPIPE).
void write_all(int fd, std::string_view text) noexcept;

// Reads what `source` holds now and passes its complete lines on to `sink` as "[rank R] line";
// at end of file passes on the last partial line and closes `source`.
void drain(Worker& w, Fd& source, int sink, std::string& partial);

// Blocks the launcher's signals in this thread (and so in threads it starts) and ignores SIGPIPE;
// restores both when destroyed.
class SignalScope {
 public:
  SignalScope() {
    ::sigemptyset(&handled_);
    for (int s : {SIGINT, SIGTERM, SIGCHLD}) ::sigaddset(&handled_, s);
    ::pthread_sigmask(SIG_BLOCK, &handled_, &previous_mask_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &previous_pipe_);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  ~SignalScope() {
    ::sigaction(SIGPIPE, &previous_pipe_, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  [[nodiscard]] const sigset_t& handled() const { return handled_; }
  [[nodiscard]] const sigset_t& previous_mask() const { return previous_mask_; }

 private:
  sigset_t handled_{};
  sigset_t previous_mask_{};
  struct sigaction previous_pipe_ {};
};

// Starts one worker: `program` with `args` and `env`, stdin from /dev/null, stdout and stderr
// into pipes whose read ends land in w.out and w.err; `with_channel`: a socket pair whose one
// end is the worker's descriptor 3 and the other w.channel.
void spawn(Worker& w, const std::string& program, std::vector<std::string> args,
           std::vector<std::string> env, const SignalScope& signals, bool with_channel = false);

// Sends `signal` to a running worker (and SIGCONT after it, so that a stopped one acts on it).
void send_signal(Worker& w, int signal);

}  // namespace tessera::cli
