#include "launcher.h"

#include <string.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hung_workers.h"
#include "launcher_flags.h"
#include "supervisor.h"
#include "tessera/comm/address.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"
#include "worker_process.h"
#include "worker_start.h"

namespace tessera::cli {
namespace {

[[noreturn]] void option_error(const std::string& option, const std::string& message) {
  throw ConfigError("command line", 0, option, message);
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
  if (!o.rdzv.empty()) at = parse_rdzv(o.rdzv);
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
  const Placement placement{.first_rank = o.node_rank * o.nproc,
                            .nproc = o.nproc,
                            .world_size = o.nproc * o.nnodes,
                            .node_rank = o.node_rank,
                            .nnodes = o.nnodes};
  const WorkerContext context{
      .store_address = rendezvous.address, .token = token, .job_id = job_id};
  std::vector<Worker> workers = start_workers(o, placement, context, signals);

  const auto restart = [&](Worker& w, int count) {
    WorkerContext again = context;
    again.extra.push_back("TESSERA_RESTART=" + std::to_string(count));
    w.last_line.clear();
    spawn(w, o.program.empty() ? "/proc/self/exe" : o.program, o.worker_args,
          worker_environment(o, placement, w, again), signals);
    say("rank " + std::to_string(w.rank) + " started again (pid " + std::to_string(w.pid) + ")");
  };
  // A parameter-server job's workers that hang: killed, then handled as though they had crashed
  // (started again, or left behind; rank 0 not started again stops the job).
  std::unique_ptr<comm::TcpStore> hung_store;
  std::optional<HungWorkers> hung;
  if (!o.expendable_ranks.empty()) {  // the workers but rank 0, which is added below
    const std::optional<comm::HostPort> store_at = comm::parse_host_port(rendezvous.address);
    if (!store_at) throw Error("launcher: cannot parse the store's address " + rendezvous.address);
    hung_store = std::make_unique<comm::TcpStore>(
        comm::TcpStoreOptions{.host = store_at->host, .port = store_at->port, .token = token});
    std::vector<int> workers = o.expendable_ranks;
    workers.push_back(0);
    hung.emplace(*hung_store, workers);
  }
  const auto hung_ranks = [&]() -> std::vector<int> {
    try {
      return hung->newly_hung();
    } catch (const Error&) {
      return {};  // the store is gone with node 0: the job is ending
    }
  };
  Supervisor supervisor(
      workers, signal_fd.get(),
      SupervisorOptions{.grace = o.grace,
                        .expendable_ranks = o.expendable_ranks,
                        .restartable_ranks = o.restartable_ranks,
                        .max_restarts = o.max_restarts,
                        .restart = restart,
                        .hung_ranks = hung ? std::function(hung_ranks) : nullptr});
  supervisor.run();
  const int code = report(workers, supervisor.first_failure(), supervisor.interrupted_by());
  finish_rendezvous(o, rendezvous, at, token, code);
  return code;
}

}  // namespace tessera::cli
