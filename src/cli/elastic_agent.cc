// The agent of an elastic job: one per host, running rendezvous rounds (comm/elastic_rendezvous.h)
// and this host's workers in each.
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent_channel.h"
#include "launcher.h"
#include "launcher_flags.h"
#include "supervisor.h"
#include "tessera/comm/elastic_rendezvous.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"
#include "worker_process.h"
#include "worker_start.h"

namespace tessera::cli {
namespace {

constexpr std::chrono::seconds kStoreRequestTimeout{30};
// A worker that exits so was refused its config or command line: running it again cannot help.
constexpr int kUsageExitCode = 2;

[[noreturn]] void option_error(const std::string& option, const std::string& message) {
  throw ConfigError("command line", 0, option, message);
}

void check_elastic_options(const LaunchOptions& o) {
  if (o.min_nproc < 1 || o.min_nproc > o.nproc) {
    option_error("--nproc", detail::concat(o.min_nproc, ":", o.nproc,
                                           " is not a range MIN:MAX with 1 <= MIN <= MAX"));
  }
  if (o.min_nnodes < 1 || o.min_nnodes > o.nnodes) {
    option_error("--nnodes", detail::concat(o.min_nnodes, ":", o.nnodes,
                                            " is not a range MIN:MAX with 1 <= MIN <= MAX"));
  }
  if (o.backend == "mpi") {
    option_error("--backend",
                 "\"mpi\" cannot change its world size: an elastic job needs gloo, "
                 "shm or auto");
  }
  if (o.nnodes > 1) {
    if (o.rdzv.empty()) {
      option_error("--rdzv",
                   detail::concat("is required with --nnodes ", o.min_nnodes, ":", o.nnodes,
                                  ": HOST:PORT of the rendezvous store, the same on "
                                  "every host (the agent on HOST hosts it)"));
    }
    if (o.token.empty()) {
      option_error("job token",
                   "is required when several hosts may join: every agent must use "
                   "the same one (TESSERA_JOB_TOKEN or --token-file)");
    }
  }
  if (!o.token.empty()) check_token(o.token, "job token");
}

// The rendezvous store: hosted here when --rdzv names a free address of this host (or on one host
// without --rdzv), else another agent's, reached as a client.
struct AgentStore {
  std::unique_ptr<comm::TcpStoreServer> server;
  std::unique_ptr<comm::TcpStore> client;
  std::string address;
};

AgentStore open_agent_store(const LaunchOptions& o, const std::string& token) {
  comm::HostPort at{.host = "127.0.0.1", .port = 0};
  if (!o.rdzv.empty()) at = parse_rdzv(o.rdzv);
  AgentStore s;
  std::string not_hosted;
  try {
    s.server = std::make_unique<comm::TcpStoreServer>(
        comm::TcpStoreServerOptions{.host = at.host, .port = at.port, .token = token});
    at.port = s.server->port();
    s.address = s.server->address();
  } catch (const comm::CommError& e) {
    if (o.rdzv.empty()) throw;
    not_hosted = e.what();  // in use (another agent hosts it) or not an address of this host
    s.address = o.rdzv;
  }
  try {
    // A request gives up after kStoreRequestTimeout: an agent cut off from the store (its
    // network down) leaves the job instead of hanging in a poll.
    s.client =
        std::make_unique<comm::TcpStore>(comm::TcpStoreOptions{.host = at.host,
                                                               .port = at.port,
                                                               .token = token,
                                                               .connect_timeout = o.rdzv_timeout,
                                                               .timeout = kStoreRequestTimeout});
  } catch (const Error& e) {
    throw comm::CommError("elastic agent: cannot host the rendezvous at " + s.address + " (" +
                          not_hosted + ") nor reach another agent's there: " + e.what());
  }
  say(s.server ? "hosting the rendezvous store at " + s.address
               : "joining the rendezvous store at " + s.address);
  return s;
}

// What one round of this host's workers came to.
struct RoundOutcome {
  int code = 0;                         // the launcher's exit code for it
  bool failed_here = false;             // a worker of this host failed
  bool fatal = false;                   // ... with a configuration error
  std::optional<comm::RoundEnd> ended;  // ended elsewhere, or by the job's end
  int interrupted_by = 0;
};

class Agent {
 public:
  Agent(const LaunchOptions& o, const SignalScope& signals, comm::Store& store, std::string address,
        std::string token, bool hosts_store)
      : o_(o),
        signals_(signals),
        rendezvous_(store, comm::ElasticOptions{.min_nodes = o.min_nnodes,
                                                .max_nodes = o.nnodes,
                                                .last_call = o.rdzv_wait,
                                                .timeout = o.rdzv_timeout,
                                                .max_restarts = o.max_restarts}),
        address_(std::move(address)),
        token_(std::move(token)),
        job_id_(comm::make_job_token().substr(0, 16)),
        shm_(job_id_),
        hosts_store_(hosts_store),
        nproc_(o.nproc) {}

  // The agent's exit code. Store errors (its host went away) end the job here.
  int run() {
    Fd signal_fd(::signalfd(-1, &signals_.handled(), SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd.valid()) throw Error("launcher: signalfd: " + std::string(strerror(errno)));
    for (;;) {
      std::optional<comm::ElasticRound> round;
      try {
        round = rendezvous_.join(nproc_);
      } catch (const Error& e) {
        stop_survivors(workers_);
        say(e.what());
        return 1;
      }
      if (!round) {
        stop_survivors(workers_);
        say("the job has finished");
        return 0;
      }
      announce(*round);
      const RoundOutcome outcome = run_round(*round, signal_fd.get());
      shm_.remove_now();
      if (!store_error_.empty()) {
        stop_survivors(workers_);
        say("the rendezvous store is gone (" + store_error_ + "): the job cannot go on here");
        return outcome.code != 0 ? outcome.code : 1;
      }
      std::optional<int> code;
      if (outcome.interrupted_by != 0 || outcome.fatal) code = outcome.code;
      if (outcome.ended && outcome.ended->kind == comm::RoundEnd::Kind::kDone) code = 0;
      if (outcome.ended && outcome.ended->kind == comm::RoundEnd::Kind::kFatal) {
        say("the job cannot go on: " + outcome.ended->reason);
        code = 1;
      }
      if (!outcome.failed_here && !outcome.ended && outcome.interrupted_by == 0) {
        guarded([&] { rendezvous_.report_done(); });
        say("the job has finished");
        code = 0;
      }
      if (code) {
        stop_survivors(workers_);
        leave(*round);
        return *code;
      }
      if (outcome.failed_here && nproc_ > o_.min_nproc) {
        --nproc_;
        say(detail::concat("this host offers ", nproc_,
                           " worker(s) from now on (a failed one's "
                           "place is given up; at least ",
                           o_.min_nproc, ")"));
      }
      guarded([&] { step_at_end_ = rendezvous_.last_step(round->number); });
    }
  }

 private:
  // Runs a store call; an error is kept for run() to report, and the round ends.
  template <typename F>
  bool guarded(F&& call) {
    if (!store_error_.empty()) return false;
    try {
      call();
      return true;
    } catch (const Error& e) {
      store_error_ = e.what();
      return false;
    }
  }

  // The host of the store keeps it until the others have seen the job end.
  void leave(const comm::ElasticRound& round) {
    guarded([&] {
      rendezvous_.leave(round);
      if (hosts_store_) rendezvous_.wait_for_others_to_leave(round, o_.grace);
    });
  }

  void announce(const comm::ElasticRound& r) {
    std::string text = detail::concat("round ", r.number, ": node ", r.node_rank, " of ", r.nnodes,
                                      ", world size ", r.world_size, ", ranks ", r.first_rank, "..",
                                      r.first_rank + r.nproc - 1);
    if (r.number > 0) {
      text += detail::concat("; ", r.restarts, " of at most ", o_.max_restarts,
                             " failure(s) survived so far; resuming from the newest memory copy "
                             "or checkpoint");
    }
    say(text);
  }

  RoundOutcome run_round(const comm::ElasticRound& r, int signal_fd) {
    const Placement placement{.first_rank = r.first_rank,
                              .nproc = r.nproc,
                              .world_size = r.world_size,
                              .node_rank = r.node_rank,
                              .nnodes = r.nnodes,
                              .attempt = r.number};
    const WorkerContext context{.store_address = address_,
                                .token = token_,
                                .job_id = job_id_,
                                .extra = {"TESSERA_ELASTIC=1"},
                                .channel = true};
    const int placed = place_survivors(r);
    for (Worker& w : start_workers(o_, placement, context, signals_, placed)) {
      workers_.push_back(std::move(w));
    }
    std::vector<Worker>& workers = workers_;
    RoundOutcome outcome;
    bool resumed_said = r.number == 0 || r.first_rank != 0;
    // New spares start once the round has resumed: loading their data must not slow it down.
    bool resumed = r.number == 0;
    Supervisor supervisor(
        workers, signal_fd,
        SupervisorOptions{.grace = o_.grace,
                          .stop_check = [&]() -> std::optional<std::string> {
                            guarded([&] {
                              if (!resumed_said) resumed_said = say_resumed(r.number);
                              if (!resumed)
                                resumed = rendezvous_.resumed_step(r.number).has_value();
                              outcome.ended = rendezvous_.should_end(r);
                            });
                            if (resumed) start_missing_spares(placement, context);
                            if (!store_error_.empty()) return store_error_;
                            if (outcome.ended) return outcome.ended->reason;
                            return std::nullopt;
                          },
                          .on_failure =
                              [&](const Worker& w) {
                                outcome.failed_here = true;
                                outcome.fatal = exit_code_of(w.status) == kUsageExitCode;
                                guarded([&] {
                                  const std::string reason = detail::concat(
                                      "rank ", w.rank, " (node ", r.node_rank, ", pid ", w.pid,
                                      ") ", describe(w), "; the job had reached step ",
                                      rendezvous_.last_step(r.number));
                                  rendezvous_.report_failure(r, reason, outcome.fatal);
                                });
                              }});
    supervisor.run();
    // A round shorter than a poll still says where it began.
    if (!resumed_said) guarded([&] { (void)say_resumed(r.number); });
    outcome.interrupted_by = supervisor.interrupted_by();
    if (outcome.interrupted_by == 0 && !outcome.failed_here && !outcome.ended) {
      account_for_standbys(r, outcome);
    }
    if (outcome.failed_here || outcome.interrupted_by != 0) {
      const bool final = outcome.fatal || outcome.interrupted_by != 0;
      outcome.code = report(workers, supervisor.first_failure(), outcome.interrupted_by, final);
    }
    if (outcome.interrupted_by != 0 && !outcome.failed_here) {
      // This host leaves the job; the others go on without it.
      guarded([&] {
        rendezvous_.report_failure(r,
                                   "node " + std::to_string(r.node_rank) +
                                       "'s agent was interrupted by " +
                                       signal_name(outcome.interrupted_by),
                                   false);
      });
    }
    if (outcome.ended && outcome.ended->kind != comm::RoundEnd::Kind::kDone) {
      say(detail::concat("round ", r.number, " ended: ", outcome.ended->reason));
    }
    if (outcome.failed_here) outcome.ended.reset();
    return outcome;
  }

  // Starts spares until this host has --spares of them.
  void start_missing_spares(const Placement& placement, const WorkerContext& context) {
    const auto spares =
        std::count_if(workers_.begin(), workers_.end(), [](const Worker& w) { return w.spare; });
    for (Worker& w :
         start_spares(o_, placement, context, signals_, o_.spares - static_cast<int>(spares))) {
      workers_.push_back(std::move(w));
    }
  }

  // Workers standing by (their group broke) while none failed here and the round did not end: a
  // worker that neither stood by nor finished within the grace was stopped as hung, and is this
  // host's failure; else the failure is another host's, which says so, or, when none does within
  // the grace (its worker hangs and it has no other), this host reports the broken group.
  void account_for_standbys(const comm::ElasticRound& r, RoundOutcome& outcome) {
    const auto standby = std::find_if(workers_.begin(), workers_.end(),
                                      [](const Worker& w) { return w.standing_by && !w.spare; });
    if (standby == workers_.end()) return;
    for (const Worker& w : workers_) {
      if (w.standing_by || w.spare || w.sent_signal == 0) continue;
      outcome.failed_here = true;
      const std::string reason = detail::concat(
          "rank ", w.rank, " (node ", r.node_rank, ", pid ", w.pid,
          ") failed: it hung (it neither went on nor stood by within the grace after its group "
          "broke) and was stopped; rank ",
          standby->rank, " said: ", standby->standby_reason);
      say(reason);
      guarded([&] { rendezvous_.report_failure(r, reason, false); });
      return;
    }
    const auto until = std::chrono::steady_clock::now() + o_.grace;
    while (guarded([&] { outcome.ended = rendezvous_.should_end(r); }) && !outcome.ended &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (outcome.ended || !store_error_.empty()) return;
    const std::string reason = detail::concat("the group of rank ", standby->rank, " (node ",
                                              r.node_rank, ") broke: ", standby->standby_reason);
    guarded([&] { rendezvous_.report_failure(r, reason, false); });
    outcome.ended = comm::RoundEnd{comm::RoundEnd::Kind::kFailed, reason};
  }

  // The workers standing by from the last round take this host's first places in round `r` (in
  // their order), then the spares; survivors beyond its places are stopped, spares beyond them
  // stay spares (after the places, which start_workers fills). Returns the places taken.
  int place_survivors(const comm::ElasticRound& r) {
    std::erase_if(workers_, [](const Worker& w) { return !w.running || !w.standing_by; });
    std::stable_partition(workers_.begin(), workers_.end(),
                          [](const Worker& w) { return !w.spare; });
    const auto survivors =
        std::count_if(workers_.begin(), workers_.end(), [](const Worker& w) { return !w.spare; });
    if (survivors > r.nproc) {
      std::vector<Worker> extra(std::make_move_iterator(workers_.begin() + r.nproc),
                                std::make_move_iterator(workers_.begin() + survivors));
      workers_.erase(workers_.begin() + r.nproc, workers_.begin() + survivors);
      stop_survivors(extra);
    }
    const std::size_t places = std::min(workers_.size(), static_cast<std::size_t>(r.nproc));
    std::string placed;
    for (std::size_t i = 0; i < places; ++i) {
      Worker& w = workers_[i];
      const int local = static_cast<int>(i);
      write_all(w.channel.get(), place_line({.rank = r.first_rank + local,
                                             .world_size = r.world_size,
                                             .local_rank = local,
                                             .local_world_size = r.nproc,
                                             .nnodes = r.nnodes,
                                             .attempt = r.number}) +
                                     "\n");
      placed +=
          detail::concat(i ? ", " : "", w.spare ? "a spare" : "rank " + std::to_string(w.rank),
                         " -> ", r.first_rank + local, " (pid ", w.pid, ")");
      w.spare = false;
      w.rank = r.first_rank + local;
      w.local_rank = local;
      w.standing_by = false;
      w.standby_reason.clear();
      w.sent_signal = 0;
      w.stopped_when_signalled = false;
    }
    if (!placed.empty()) say("workers that stood by go on in this round: " + placed);
    return static_cast<int>(places);
  }

  // Tells workers standing by to exit, and waits for them (SIGKILL after the grace).
  void stop_survivors(std::vector<Worker>& workers) {
    for (Worker& w : workers) {
      if (!w.running) continue;
      write_all(w.channel.get(), "stop\n");
      w.channel.reset();
    }
    const auto until = std::chrono::steady_clock::now() + o_.grace;
    for (Worker& w : workers) {
      while (w.running) {
        int status = 0;
        const pid_t got = ::waitpid(w.pid, &status, WNOHANG);
        if (got == w.pid || (got < 0 && errno != EINTR)) {
          w.running = false;
        } else if (std::chrono::steady_clock::now() >= until) {
          ::kill(w.pid, SIGKILL);
          ::waitpid(w.pid, &status, 0);
          w.running = false;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      drain(w, w.out, STDOUT_FILENO, w.out_partial);
      drain(w, w.err, STDERR_FILENO, w.err_partial);
    }
  }

  // Says, once a worker of round `number` reported it, the step the round resumed from and the
  // steps lost since the previous round's last report. False while it has not reported.
  bool say_resumed(std::int64_t number) {
    const std::optional<std::int64_t> step = rendezvous_.resumed_step(number);
    if (!step) return false;
    std::string text = detail::concat("round ", number, " resumed from step ", *step);
    if (step_at_end_ >= 0) {
      text += detail::concat(" (the last round had reached step ", step_at_end_, ": ",
                             std::max<std::int64_t>(0, step_at_end_ - *step), " step(s) lost)");
    }
    say(text);
    return true;
  }

  const LaunchOptions& o_;
  const SignalScope& signals_;
  comm::ElasticRendezvous rendezvous_;
  std::string address_;
  std::string token_;
  std::string job_id_;
  ShmCleanup shm_;
  bool hosts_store_;
  int nproc_;
  // This host's workers: those of the running round, and between rounds those standing by.
  std::vector<Worker> workers_;
  std::string store_error_;
  std::int64_t step_at_end_ = -1;
};

}  // namespace

int run_elastic_agent(const LaunchOptions& o) {
  check_elastic_options(o);
  const std::string token = o.token.empty() ? comm::make_job_token() : o.token;
  // Blocked before the store's threads start, so that they leave the signals to this thread.
  SignalScope signals;
  AgentStore store = open_agent_store(o, token);
  Agent agent(o, signals, *store.client, store.address, token, store.server != nullptr);
  return agent.run();
}

}  // namespace tessera::cli
