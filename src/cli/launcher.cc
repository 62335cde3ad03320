#include "launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "tessera/comm/address.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"

extern char** environ;

namespace tessera::cli {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kPrefix = "tessera launcher: ";
// What the launcher tells each worker; values of these inherited from the launcher's own
// environment are replaced.
constexpr std::string_view kWorkerVariables[] = {
    "TESSERA_RANK",       "TESSERA_WORLD_SIZE", "TESSERA_LOCAL_RANK", "TESSERA_LOCAL_WORLD_SIZE",
    "TESSERA_STORE_ADDR", "TESSERA_JOB_TOKEN",  "TESSERA_JOB_ID",     "TESSERA_BACKEND",
    "TESSERA_NODE_RANK"};
// A worker line longer than this is passed on in pieces (a worker printing without newlines must
// not grow the launcher's memory).
constexpr std::size_t kMaxLine = 64 * 1024;
// Tokens travel in environments and files: keep them to safe characters, and long enough that
// guessing one is hopeless.
constexpr std::size_t kMinTokenLength = 16;

[[noreturn]] void option_error(const std::string& option, const std::string& message) {
  throw ConfigError("command line", 0, option, message);
}

std::string signal_name(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(signal);
}

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

// Writes all of `text`, waiting out a full pipe; drops it when the reader has gone (EPIPE).
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

void say(const std::string& text) { write_all(STDERR_FILENO, kPrefix + text + "\n"); }

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
  int status = 0;       // waitpid status once reaped
  int sent_signal = 0;  // the last signal the launcher sent it
};

[[nodiscard]] bool failed(int status) {
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

[[nodiscard]] int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

std::string describe(const Worker& w) {
  std::string text;
  if (w.running) {
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

// Passes complete lines of `data` on to `fd` as "[rank R] line"; keeps the rest in `partial`.
void forward(Worker& w, int fd, std::string& partial, std::string_view data) {
  partial.append(data);
  std::size_t start = 0;
  const std::string prefix = "[rank " + std::to_string(w.rank) + "] ";
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

// Reads what `source` holds now; at end of file passes on the last partial line and closes it.
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

// Removes /dev/shm/tessera-<job id>* when the launcher returns, however it returns: the shared-
// memory backend names its segments so, and a worker that crashed cannot remove its own.
class ShmCleanup {
 public:
  explicit ShmCleanup(const std::string& job_id) : prefix_("tessera-" + job_id) {}
  ShmCleanup(const ShmCleanup&) = delete;
  ShmCleanup& operator=(const ShmCleanup&) = delete;
  ~ShmCleanup() {
    std::error_code error;
    std::filesystem::directory_iterator it("/dev/shm", error);
    if (error) return;
    for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
      if (error) return;
      if (it->path().filename().string().rfind(prefix_, 0) == 0) {
        std::error_code ignored;
        std::filesystem::remove(it->path(), ignored);
      }
    }
  }

 private:
  std::string prefix_;
};

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

std::pair<std::string, int> parse_rdzv(const std::string& text) {
  const std::optional<comm::HostPort> address = comm::parse_host_port(text);
  if (!address) {
    option_error("--rdzv", "\"" + text + "\" is not HOST:PORT (an IPv6 address as [ADDR]:PORT)");
  }
  return {address->host, address->port};
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

void check_token(const std::string& token, const std::string& where) {
  const bool safe = std::all_of(token.begin(), token.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
  if (!safe || token.size() < kMinTokenLength) {
    option_error(where,
                 "the job token must be at least 16 characters of A-Z, a-z, 0-9, - and _ "
                 "(e.g. the output of `od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'`)");
  }
}

std::vector<std::string> worker_environment(const LaunchOptions& o, const Worker& w,
                                            const std::string& store_address,
                                            const std::string& token, const std::string& job_id) {
  std::vector<std::string> env;
  for (char** p = environ; *p != nullptr; ++p) {
    std::string_view entry(*p);
    std::string_view name = entry.substr(0, entry.find('='));
    if (std::find(std::begin(kWorkerVariables), std::end(kWorkerVariables), name) ==
        std::end(kWorkerVariables)) {
      env.emplace_back(entry);
    }
  }
  env.push_back("TESSERA_RANK=" + std::to_string(w.rank));
  env.push_back("TESSERA_WORLD_SIZE=" + std::to_string(o.nproc * o.nnodes));
  env.push_back("TESSERA_LOCAL_RANK=" + std::to_string(w.local_rank));
  env.push_back("TESSERA_LOCAL_WORLD_SIZE=" + std::to_string(o.nproc));
  env.push_back("TESSERA_NODE_RANK=" + std::to_string(o.node_rank));
  env.push_back("TESSERA_STORE_ADDR=" + store_address);
  env.push_back("TESSERA_JOB_TOKEN=" + token);
  env.push_back("TESSERA_JOB_ID=" + job_id);
  env.push_back("TESSERA_BACKEND=" + o.backend);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts one worker: `program` with `args` and `env`, stdin from /dev/null, stdout and stderr
// into pipes whose read ends land in w.out and w.err. Between fork and exec the child only makes
// async-signal-safe calls: the launcher has other threads (the store server) whose locks a child
// could inherit held.
void spawn(Worker& w, const std::string& program, std::vector<std::string> args,
           std::vector<std::string> env, const SignalScope& signals) {
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
    // Nothing else of the launcher's (listening socket, other workers' pipes) reaches the worker.
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
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
}

void send_signal(Worker& w, int signal) {
  if (!w.running) return;
  w.sent_signal = signal;
  if (w.stopped) w.stopped_when_signalled = true;
  ::kill(w.pid, signal);
  // A stopped process does not act on SIGTERM or SIGINT until it is continued.
  if (signal != SIGKILL) ::kill(w.pid, SIGCONT);
}

}  // namespace

int run_launcher(const LaunchOptions& o) {
  if (o.nproc < 1) option_error("--nproc", "must be >= 1, got " + std::to_string(o.nproc));
  if (o.nnodes < 1) option_error("--nnodes", "must be >= 1, got " + std::to_string(o.nnodes));
  if (o.node_rank < 0 || o.node_rank >= o.nnodes) {
    option_error("--node-rank", "must be in [0, " + std::to_string(o.nnodes) + "), got " +
                                    std::to_string(o.node_rank));
  }
  std::string host = "127.0.0.1";
  int port = 0;
  if (!o.rdzv.empty()) std::tie(host, port) = parse_rdzv(o.rdzv);
  if (o.nnodes > 1) {
    if (o.rdzv.empty()) {
      option_error("--rdzv", "is required with --nnodes " + std::to_string(o.nnodes) +
                                 ": HOST:PORT where node 0's launcher hosts the rendezvous "
                                 "(an address of node 0 that the other nodes reach)");
    }
    if (port == 0) option_error("--rdzv", "needs a port other than 0 with several nodes");
    if (is_loopback(host)) {
      option_error("--rdzv", "\"" + o.rdzv + "\" is a loopback address, which the other " +
                                 std::to_string(o.nnodes - 1) +
                                 " node(s) cannot reach: give node 0's address on their network");
    }
    if (o.token.empty()) {
      option_error("job token", "is required with --nnodes " + std::to_string(o.nnodes) +
                                    ": every node's launcher must use the same one "
                                    "(TESSERA_JOB_TOKEN or --token-file)");
    }
  }
  if (o.backend == "mpi") {
    option_error("--backend",
                 "\"mpi\" runs under mpirun or srun, which start the processes: "
                 "`mpirun -np N tessera train CONFIG` (without --nproc)");
  }
  if (!o.token.empty()) check_token(o.token, "job token");
  const std::string token = o.token.empty() ? comm::make_job_token() : o.token;
  // Names this host's shared memory of the job, which every local user can list: not the token.
  const std::string job_id = comm::make_job_token().substr(0, 16);

  SignalScope signals;
  Fd signal_fd(::signalfd(-1, &signals.handled(), SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd.valid()) throw Error("launcher: signalfd: " + std::string(strerror(errno)));

  // The store: hosted here on node 0 (threads started from now on inherit the blocked signals).
  std::unique_ptr<comm::TcpStoreServer> server;
  std::unique_ptr<comm::TcpStore> client;
  std::string store_address;
  if (o.node_rank == 0) {
    server = std::make_unique<comm::TcpStoreServer>(
        comm::TcpStoreServerOptions{.host = host, .port = port, .token = token});
    store_address = server->address();
  } else {
    // Fails early, naming the address, when node 0 cannot be reached or refuses the token.
    client = std::make_unique<comm::TcpStore>(
        comm::TcpStoreOptions{.host = host, .port = port, .token = token});
    store_address = o.rdzv;
  }
  ShmCleanup shm_cleanup(job_id);

  const int world = o.nproc * o.nnodes;
  std::vector<Worker> workers(static_cast<std::size_t>(o.nproc));
  std::string started;
  try {
    for (int i = 0; i < o.nproc; ++i) {
      Worker& w = workers[static_cast<std::size_t>(i)];
      w.local_rank = i;
      w.rank = o.node_rank * o.nproc + i;
      spawn(w, o.program.empty() ? "/proc/self/exe" : o.program, o.worker_args,
            worker_environment(o, w, store_address, token, job_id), signals);
      started += (i ? ", rank " : "rank ") + std::to_string(w.rank) + " (pid " +
                 std::to_string(w.pid) + ")";
    }
  } catch (...) {
    // Half a job is no job: the workers already started would wait for the others until their
    // timeout.
    for (Worker& w : workers) {
      if (w.running) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, nullptr, 0);
      }
    }
    throw;
  }
  say("store at " + store_address + "; node " + std::to_string(o.node_rank) + " of " +
      std::to_string(o.nnodes) + ", world size " + std::to_string(world) + "; started " + started);

  enum class Phase { kRunning, kDraining, kTerminating, kKilled };
  Phase phase = Phase::kRunning;
  Clock::time_point deadline = Clock::time_point::max();
  std::optional<std::size_t> first_failure;
  int interrupted_by = 0;

  auto signal_all = [&](int signal) {
    for (Worker& w : workers) send_signal(w, signal);
  };
  auto reap = [&] {
    for (std::size_t i = 0; i < workers.size(); ++i) {
      Worker& w = workers[i];
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
          w.running = false;
          w.stopped = false;
          w.status = status;
          drain(w, w.out, STDOUT_FILENO, w.out_partial);
          drain(w, w.err, STDERR_FILENO, w.err_partial);
          // Whatever is still open belongs to a process the worker started; stop listening.
          w.out.reset();
          w.err.reset();
          if (failed(status) && phase == Phase::kRunning) {
            first_failure = i;
            phase = Phase::kDraining;
            deadline = Clock::now() + o.grace;
          }
        }
      }
    }
  };

  while (std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.running; })) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, bool>> owners;  // (worker, is stderr) for fds[1...]
    fds.push_back({signal_fd.get(), POLLIN, 0});
    for (Worker& w : workers) {
      if (w.out.valid()) {
        fds.push_back({w.out.get(), POLLIN, 0});
        owners.emplace_back(&w, false);
      }
      if (w.err.valid()) {
        fds.push_back({w.err.get(), POLLIN, 0});
        owners.emplace_back(&w, true);
      }
    }
    int wait_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<long long>(left + 1, 0, 60'000));
    }
    int ready = ::poll(fds.data(), fds.size(), wait_ms);
    if (ready < 0 && errno != EINTR) throw Error("launcher: poll: " + std::string(strerror(errno)));
    for (std::size_t k = 1; ready > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      auto [w, is_err] = owners[k - 1];
      if (is_err) {
        drain(*w, w->err, STDERR_FILENO, w->err_partial);
      } else {
        drain(*w, w->out, STDOUT_FILENO, w->out_partial);
      }
    }
    if (ready > 0 && fds[0].revents != 0) {
      signalfd_siginfo info{};
      while (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
        const int sig = static_cast<int>(info.ssi_signo);
        if (sig == SIGCHLD) continue;  // reaped below
        if (phase == Phase::kRunning || phase == Phase::kDraining) {
          if (!first_failure) interrupted_by = sig;
          say("got " + signal_name(sig) + "; passing it on to the workers (again to kill them)");
          signal_all(sig);
          phase = Phase::kTerminating;
          deadline = Clock::now() + o.grace;
        } else {
          say("got " + signal_name(sig) + " again; killing the workers");
          signal_all(SIGKILL);
          phase = Phase::kKilled;
          deadline = Clock::now() + o.grace;
        }
      }
    }
    reap();
    // A stopped worker cannot exit on its own: waiting for it only delays the summary.
    if (phase == Phase::kDraining &&
        std::all_of(workers.begin(), workers.end(),
                    [](const Worker& w) { return !w.running || w.stopped; })) {
      deadline = Clock::now();
    }
    if (Clock::now() >= deadline) {
      if (phase == Phase::kDraining) {
        signal_all(SIGTERM);
        phase = Phase::kTerminating;
        deadline = Clock::now() + o.grace;
      } else if (phase == Phase::kTerminating) {
        signal_all(SIGKILL);
        phase = Phase::kKilled;
        deadline = Clock::now() + o.grace;
      } else if (phase == Phase::kKilled) {
        say("some workers did not exit after SIGKILL; giving up on them");
        break;
      }
    }
  }

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
      say("rank " + std::to_string(workers[i].rank) + " " + describe(workers[i]));
    }
    say("exit code " + std::to_string(code));
  }

  // Several nodes: node 0 keeps the store up until the others' workers are done with it.
  try {
    if (client) {
      client->set("launcher/done/" + std::to_string(o.node_rank), std::to_string(code));
    } else if (o.nnodes > 1) {
      comm::TcpStore own(comm::TcpStoreOptions{.host = host, .port = port, .token = token});
      std::vector<std::string> keys;
      for (int n = 1; n < o.nnodes; ++n) keys.push_back("launcher/done/" + std::to_string(n));
      own.wait(keys, o.grace);
    }
  } catch (const Error& e) {
    say(std::string("after the workers: ") + e.what());
  }
  return code;
}

}  // namespace tessera::cli
