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
#include <functional>
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
#include "worker_process.h"

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
    "TESSERA_NODE_RANK",  "TESSERA_RESTART"};
// Tokens travel in environments and files: keep them to safe characters, and long enough that
// guessing one is hopeless.
constexpr std::size_t kMinTokenLength = 16;

[[noreturn]] void option_error(const std::string& option, const std::string& message) {
  throw ConfigError("command line", 0, option, message);
}

void say(const std::string& text) { write_all(STDERR_FILENO, kPrefix + text + "\n"); }

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

// The rendezvous's address, once the options agree with each other.
comm::HostPort check_options(const LaunchOptions& o) {
  if (o.nproc < 1) option_error("--nproc", "must be >= 1, got " + std::to_string(o.nproc));
  if (o.nnodes < 1) option_error("--nnodes", "must be >= 1, got " + std::to_string(o.nnodes));
  if (o.node_rank < 0 || o.node_rank >= o.nnodes) {
    option_error("--node-rank", "must be in [0, " + std::to_string(o.nnodes) + "), got " +
                                    std::to_string(o.node_rank));
  }
  comm::HostPort at{.host = "127.0.0.1", .port = 0};
  if (!o.rdzv.empty()) std::tie(at.host, at.port) = parse_rdzv(o.rdzv);
  if (o.nnodes > 1) {
    if (o.rdzv.empty()) {
      option_error("--rdzv", "is required with --nnodes " + std::to_string(o.nnodes) +
                                 ": HOST:PORT where node 0's launcher hosts the rendezvous "
                                 "(an address of node 0 that the other nodes reach)");
    }
    if (at.port == 0) option_error("--rdzv", "needs a port other than 0 with several nodes");
    if (is_loopback(at.host)) {
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
  return at;
}

// The store: hosted here on node 0; elsewhere a client, which fails early, naming the address,
// when node 0 cannot be reached or refuses the token.
struct Rendezvous {
  std::unique_ptr<comm::TcpStoreServer> server;
  std::unique_ptr<comm::TcpStore> client;
  std::string address;
};

Rendezvous open_rendezvous(const LaunchOptions& o, const comm::HostPort& at,
                           const std::string& token) {
  Rendezvous r;
  if (o.node_rank == 0) {
    r.server = std::make_unique<comm::TcpStoreServer>(
        comm::TcpStoreServerOptions{.host = at.host, .port = at.port, .token = token});
    r.address = r.server->address();
  } else {
    r.client = std::make_unique<comm::TcpStore>(
        comm::TcpStoreOptions{.host = at.host, .port = at.port, .token = token});
    r.address = o.rdzv;
  }
  return r;
}

// Starts this node's workers, or none: on a failure the workers already started are killed (half
// a job is no job: they would wait for the others until their timeout).
std::vector<Worker> start_workers(const LaunchOptions& o, const std::string& store_address,
                                  const std::string& token, const std::string& job_id,
                                  const SignalScope& signals) {
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
    for (Worker& w : workers) {
      if (w.running) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, nullptr, 0);
      }
    }
    throw;
  }
  say("store at " + store_address + "; node " + std::to_string(o.node_rank) + " of " +
      std::to_string(o.nnodes) + ", world size " + std::to_string(o.nproc * o.nnodes) +
      "; started " + started);
  return workers;
}

// Watches the workers until every one has exited: passes their output on, forwards the signals
// the launcher gets (a second one kills them), and after the first failure gives the others
// `grace` to fail on their own, then SIGTERM, then after `grace` again SIGKILL.
class Supervisor {
 public:
  // `restart` starts a failed rank of `options.restartable_ranks` again (its argument: the
  // restarts so far, this one included).
  Supervisor(std::vector<Worker>& workers, int signal_fd, const LaunchOptions& options,
             std::function<void(Worker&, int)> restart)
      : workers_(workers),
        signal_fd_(signal_fd),
        grace_(options.grace),
        expendable_(options.expendable_ranks),
        restartable_(options.restartable_ranks),
        max_restarts_(options.max_restarts),
        restart_(std::move(restart)) {}

  void run() {
    while (
        std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.running; })) {
      wait_and_pass_output();
      reap();
      // A stopped worker cannot exit on its own: waiting for it only delays the summary.
      if (phase_ == Phase::kDraining &&
          std::all_of(workers_.begin(), workers_.end(),
                      [](const Worker& w) { return !w.running || w.stopped; })) {
        deadline_ = Clock::now();
      }
      if (Clock::now() >= deadline_ && !escalate()) break;
    }
  }

  [[nodiscard]] std::optional<std::size_t> first_failure() const { return first_failure_; }
  [[nodiscard]] int interrupted_by() const { return interrupted_by_; }

 private:
  enum class Phase { kRunning, kDraining, kTerminating, kKilled };

  void enter(Phase phase) {
    phase_ = phase;
    deadline_ = Clock::now() + grace_;
  }

  void signal_all(int signal) {
    for (Worker& w : workers_) send_signal(w, signal);
  }

  // Polls the workers' pipes and the signal fd until something arrives or the deadline passes.
  void wait_and_pass_output() {
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, bool>> owners;  // (worker, is stderr) for fds[1...]
    fds.push_back({signal_fd_, POLLIN, 0});
    for (Worker& w : workers_) {
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
    if (deadline_ != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now()).count();
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
    if (ready > 0 && fds[0].revents != 0) read_signals();
  }

  void read_signals() {
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

  void reap() {
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

  void exited(std::size_t i, int status) {
    Worker& w = workers_[i];
    w.running = false;
    w.stopped = false;
    w.status = status;
    drain(w, w.out, STDOUT_FILENO, w.out_partial);
    drain(w, w.err, STDERR_FILENO, w.err_partial);
    // Whatever is still open belongs to a process the worker started; stop listening.
    w.out.reset();
    w.err.reset();
    if (!failed(status) || phase_ != Phase::kRunning) return;
    if (restarts_ < max_restarts_ &&
        std::find(restartable_.begin(), restartable_.end(), w.rank) != restartable_.end()) {
      ++restarts_;
      say("rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") failed: it " +
          describe(w) + "; starting it again (restart " + std::to_string(restarts_) + " of " +
          std::to_string(max_restarts_) + ")");
      restart_(w, restarts_);
      return;
    }
    if (std::find(expendable_.begin(), expendable_.end(), w.rank) != expendable_.end()) {
      say("rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") failed: it " +
          describe(w) + "; the job goes on without it");
      return;
    }
    first_failure_ = i;
    enter(Phase::kDraining);
  }

  // The deadline passed: the next step towards an end. False when there is none left.
  bool escalate() {
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

  std::vector<Worker>& workers_;
  const int signal_fd_;
  const milliseconds grace_;
  const std::vector<int> expendable_;
  const std::vector<int> restartable_;
  const int max_restarts_;
  const std::function<void(Worker&, int)> restart_;
  int restarts_ = 0;
  Phase phase_ = Phase::kRunning;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::optional<std::size_t> first_failure_;
  int interrupted_by_ = 0;
};

// The launcher's exit code, with a summary of every worker on stderr when it is not 0.
int report(const std::vector<Worker>& workers, std::optional<std::size_t> first_failure,
           int interrupted_by) {
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
  return code;
}

// Several nodes: node 0 keeps the store up until the others' workers are done with it.
void finish_rendezvous(const LaunchOptions& o, const Rendezvous& r, const comm::HostPort& at,
                       const std::string& token, int code) {
  try {
    if (r.client) {
      r.client->set("launcher/done/" + std::to_string(o.node_rank), std::to_string(code));
    } else if (o.nnodes > 1) {
      comm::TcpStore own(comm::TcpStoreOptions{.host = at.host, .port = at.port, .token = token});
      std::vector<std::string> keys;
      for (int n = 1; n < o.nnodes; ++n) keys.push_back("launcher/done/" + std::to_string(n));
      own.wait(keys, o.grace);
    }
  } catch (const Error& e) {
    say(std::string("after the workers: ") + e.what());
  }
}

}  // namespace

int run_launcher(const LaunchOptions& o) {
  const comm::HostPort at = check_options(o);
  const std::string token = o.token.empty() ? comm::make_job_token() : o.token;
  // Names this host's shared memory of the job, which every local user can list: not the token.
  const std::string job_id = comm::make_job_token().substr(0, 16);

  SignalScope signals;
  Fd signal_fd(::signalfd(-1, &signals.handled(), SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd.valid()) throw Error("launcher: signalfd: " + std::string(strerror(errno)));
  // Threads started from now on (the store server's) inherit the blocked signals.
  const Rendezvous rendezvous = open_rendezvous(o, at, token);
  ShmCleanup shm_cleanup(job_id);
  std::vector<Worker> workers = start_workers(o, rendezvous.address, token, job_id, signals);

  const auto restart = [&](Worker& w, int count) {
    std::vector<std::string> env = worker_environment(o, w, rendezvous.address, token, job_id);
    env.push_back("TESSERA_RESTART=" + std::to_string(count));
    w.last_line.clear();
    spawn(w, o.program.empty() ? "/proc/self/exe" : o.program, o.worker_args, std::move(env),
          signals);
    say("rank " + std::to_string(w.rank) + " started again (pid " + std::to_string(w.pid) + ")");
  };
  Supervisor supervisor(workers, signal_fd.get(), o, restart);
  supervisor.run();
  const int code = report(workers, supervisor.first_failure(), supervisor.interrupted_by());
  finish_rendezvous(o, rendezvous, at, token, code);
  return code;
}

}  // namespace tessera::cli
