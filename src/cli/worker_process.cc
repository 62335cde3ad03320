#include "worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>

#include "tessera/core/error.h"

namespace tessera::cli {
namespace {

// A worker line longer than this is passed on in pieces (a worker printing without newlines must
// not grow the launcher's memory).
constexpr std::size_t kMaxLine = 64 * 1024;
// Passes complete lines of `data` on to `fd` as "[rank R] line"; keeps the rest in `partial`.
void forward(Worker& w, int fd, std::string& partial, std::string_view data) {
  partial.append(data);
  std::size_t start = 0;
  const std::string prefix = w.spare ? "[spare] " : "[rank " + std::to_string(w.rank) + "] ";
  auto emit = [&](std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    write_all(fd, prefix + std::string(line) + "\n");
    if (line.find_first_not_of(" \t") != std::string_view::npos) w.last_line = line;
  };
  for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    emit(std::string_view(partial).substr(start, nl - start));
  }
  partial.erase(0, start);
  if (partial.size() >= kMaxLine) {
    emit(partial);
    partial.clear();
  }
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

bool failed(int status) {
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

std::string signal_name(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(signal);
}

std::string describe(const Worker& w) {
  std::string text;
  if (w.standing_by && w.spare) {
    text = "stands by, its data loaded";
  } else if (w.standing_by) {
    text = "stands by with its state in memory (its group broke: " + w.standby_reason + ")";
  } else if (w.running) {
    text = w.stopped ? "is stopped and did not exit" : "did not exit";
  } else if (WIFSIGNALED(w.status)) {
    text = "was killed by " + signal_name(WTERMSIG(w.status));
    if (w.sent_signal == WTERMSIG(w.status)) text += " from the launcher";
    text += " (exit code " + std::to_string(exit_code_of(w.status)) + ")";
  } else {
    text = "exited with code " + std::to_string(exit_code_of(w.status));
  }
  if (w.stopped_when_signalled) text += "; it had been stopped (SIGSTOP or SIGTSTP) until then";
  text += w.last_line.empty() ? "; it printed nothing" : "; its last line: \"" + w.last_line + "\"";
  return text;
}

void write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n > 0) {
      text.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      ::poll(&p, 1, 100);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;
    }
  }
}

void drain(Worker& w, Fd& source, int sink, std::string& partial) {
  char buffer[16384];
  while (source.valid()) {
    ssize_t n = ::read(source.get(), buffer, sizeof(buffer));
    if (n > 0) {
      forward(w, sink, partial, std::string_view(buffer, static_cast<std::size_t>(n)));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      if (!partial.empty()) forward(w, sink, partial, "\n");
      source.reset();
    }
  }
}

// Starts one worker: `program` with `args` and `env`, stdin from /dev/null, stdout and stderr
// into pipes whose read ends land in w.out and w.err. Between fork and exec the child only makes
// async-signal-safe calls: the launcher has other threads (the store server) whose locks a child
// could inherit held.
void spawn(Worker& w, const std::string& program, std::vector<std::string> args,
           std::vector<std::string> env, const SignalScope& signals, bool with_channel) {
  Fd channel_mine, channel_theirs;
  if (with_channel) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
      throw Error("launcher: socketpair: " + std::string(strerror(errno)));
    channel_mine = Fd(pair[0]);
    channel_theirs = Fd(pair[1]);
  }
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    throw Error("launcher: pipe: " + std::string(strerror(errno)));
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw Error("launcher: pipe: " + std::string(strerror(errno)));
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null.valid())
    throw Error("launcher: cannot open /dev/null: " + std::string(strerror(errno)));
  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(env);
  const sigset_t& restore = signals.previous_mask();
  const pid_t parent = ::getpid();
  const std::string exec_failed =
      "tessera launcher: cannot execute " + program + " for rank " + std::to_string(w.rank) + "\n";

  const pid_t pid = ::fork();
  if (pid < 0) throw Error("launcher: fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    // Its own process group: a terminal's Ctrl-C reaches the launcher alone, which passes it on.
    ::setpgid(0, 0);
    // Dies with the launcher, even when the launcher is killed outright.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(null.get(), STDIN_FILENO) < 0 || ::dup2(out_write.get(), STDOUT_FILENO) < 0 ||
        ::dup2(err_write.get(), STDERR_FILENO) < 0) {
      ::_exit(127);
    }
    int first_closed = 3;
    if (channel_theirs.valid()) {
      // dup2 onto itself would keep close-on-exec.
      if (channel_theirs.get() == 3 ? ::fcntl(3, F_SETFD, 0) < 0
                                    : ::dup2(channel_theirs.get(), 3) < 0) {
        ::_exit(127);
      }
      first_closed = 4;
    }
    // Nothing else of the launcher's (listening socket, other workers' pipes) reaches the worker.
    ::syscall(SYS_close_range, static_cast<unsigned>(first_closed), ~0U, 0U);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &default_action, nullptr);
    ::sigprocmask(SIG_SETMASK, &restore, nullptr);
    ::execve(program.c_str(), argv.data(), envp.data());
    [[maybe_unused]] ssize_t ignored =
        ::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // Also here: whichever of the two runs first, the group exists.
  ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  w.pid = pid;
  w.running = true;
  w.out = std::move(out_read);
  w.err = std::move(err_read);
  w.channel = std::move(channel_mine);
}

void send_signal(Worker& w, int signal) {
  if (!w.running) return;
  w.sent_signal = signal;
  if (w.stopped) w.stopped_when_signalled = true;
  ::kill(w.pid, signal);
  // A stopped process does not act on SIGTERM or SIGINT until it is continued.
  if (signal != SIGKILL) ::kill(w.pid, SIGCONT);
}

}  // namespace tessera::cli
