#include "tessera/comm/init.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <utility>
#include <vector>

#include "tessera/comm/address.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/mpi/mpi_group.h"
#include "tessera/comm/prefix_store.h"
#include "tessera/comm/shm/hierarchical_group.h"
#include "tessera/comm/shm/shm_group.h"
#include "tessera/comm/socket.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/env.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using std::chrono::milliseconds;

constexpr const char* kEnvSource = "environment";
// Under srun without MASTER_PORT the store listens on kSlurmBasePort + job id % kSlurmPorts.
constexpr int kSlurmBasePort = 15000;
constexpr int kSlurmPorts = 10000;

[[noreturn]] void env_error(const std::string& variable, const std::string& message) {
  throw ConfigError(kEnvSource, 0, variable, message);
}

// An integer variable, or nullopt when unset; ConfigError when it is not an integer >= min.
std::optional<int> read_int(const EnvLookup& env, const char* name, int min) {
  auto text = env(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text->c_str(), &end, 10);
  if (end == text->c_str() || *end != '\0' || errno == ERANGE || value < min ||
      value > 1'000'000'000L) {
    env_error(name, detail::concat("\"", *text, "\" is not an integer >= ", min));
  }
  return static_cast<int>(value);
}

int require_int(const EnvLookup& env, const char* name, int min, const char* needed_by) {
  auto value = read_int(env, name, min);
  if (!value) env_error(name, detail::concat("is not set, but ", needed_by, " is"));
  return *value;
}

// parse_host_port() with a port in 1-65535, or an error naming `variable`.
std::pair<std::string, int> parse_address(const std::string& variable, const std::string& text) {
  const std::optional<HostPort> address = parse_host_port(text);
  if (!address || address->port < 1) {
    env_error(variable, "\"" + text +
                            "\" is not HOST:PORT with a port in 1-65535 (an IPv6 address as "
                            "[ADDR]:PORT)");
  }
  return {address->host, address->port};
}

// Slurm's compressed task counts per node, "2(x3),1" = 2,2,2,1, indexed by node.
std::optional<int> slurm_tasks_on_node(const std::string& list, int node) {
  std::vector<int> counts;
  std::size_t at = 0;
  while (at < list.size()) {
    std::size_t comma = list.find(',', at);
    std::string item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? list.size() : comma + 1;
    int count = 0;
    int repeat = 1;
    if (std::sscanf(item.c_str(), "%d(x%d)", &count, &repeat) < 1 || count < 1 || repeat < 1 ||
        repeat > 1'000'000) {
      return std::nullopt;
    }
    counts.insert(counts.end(), static_cast<std::size_t>(repeat), count);
  }
  if (counts.empty()) return std::nullopt;
  if (std::all_of(counts.begin(), counts.end(), [&](int c) { return c == counts.front(); })) {
    return counts.front();
  }
  if (node < 0 || node >= static_cast<int>(counts.size())) return std::nullopt;
  return counts[static_cast<std::size_t>(node)];
}

// The first host of a Slurm node list: "node[07-09,12],gpu1" -> "node07"; every bracket keeps its
// first number as written (zero padding included). nullopt when the list is malformed.
std::optional<std::string> slurm_first_host(const std::string& list) {
  std::string host;
  std::size_t at = 0;
  while (at < list.size() && list[at] != ',') {
    if (list[at] != '[') {
      host += list[at++];
      continue;
    }
    const std::size_t close = list.find(']', at);
    if (close == std::string::npos) return std::nullopt;
    const std::string range = list.substr(at + 1, close - at - 1);
    const std::string first = range.substr(0, range.find_first_of("-,"));
    if (first.empty() ||
        !std::all_of(first.begin(), first.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    host += first;
    at = close + 1;
  }
  if (host.empty()) return std::nullopt;
  return host;
}

// A job id names files (shared-memory segments): short, and nothing a path could misread.
bool is_job_id(const std::string& id) {
  return id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
         });
}

struct RankVariables {
  JobLauncher launcher;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
};

constexpr RankVariables kRankVariables[] = {
    {JobLauncher::kTessera, "TESSERA_RANK", "TESSERA_WORLD_SIZE", "TESSERA_LOCAL_RANK",
     "TESSERA_LOCAL_WORLD_SIZE"},
    {JobLauncher::kOpenMpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {JobLauncher::kPmi, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
};

// The local address of the route towards host:port (no packet is sent: connecting a UDP socket
// only picks the route). This is the interface the other hosts reach us on when the store's host
// is reachable from them, which is the case the rendezvous depends on anyway.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw CommError(detail::concat("cannot resolve the store's host \"", host,
                                   "\" to choose this rank's interface: ", ::gai_strerror(rc),
                                   "; set TESSERA_IFACE_HOST to this host's address"));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Socket socket(::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket.valid() || ::connect(socket.fd(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = errno_message(errno);
      continue;
    }
    sockaddr_storage local{};
    socklen_t length = sizeof(local);
    if (::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      last_error = errno_message(errno);
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* address =
        local.ss_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&local)->sin_addr);
    if (::inet_ntop(local.ss_family, address, text, sizeof(text)) != nullptr) {
      ::freeaddrinfo(found);
      return text;
    }
    last_error = errno_message(errno);
  }
  ::freeaddrinfo(found);
  throw CommError(detail::concat("no route from this host to the store at ",
                                 format_address(host, port), " (", last_error,
                                 "); set TESSERA_IFACE_HOST to this host's address"));
}

// Rank 0's store under mpirun/srun: the server it hosts and its own client, alive as long as the
// group that holds this store (the other ranks keep using the server until they shut down too).
class HostedStore final : public Store {
 public:
  HostedStore(std::unique_ptr<TcpStoreServer> server, std::unique_ptr<TcpStore> client)
      : Store(client->timeout()), server_(std::move(server)), client_(std::move(client)) {}

  void set(const std::string& key, std::string_view value) override { client_->set(key, value); }
  [[nodiscard]] bool check(const std::vector<std::string>& keys) override {
    return client_->check(keys);
  }
  std::int64_t add(const std::string& key, std::int64_t delta) override {
    return client_->add(key, delta);
  }
  std::string compare_set(const std::string& key, std::string_view expected,
                          std::string_view desired) override {
    return client_->compare_set(key, expected, desired);
  }
  bool remove(const std::string& key) override { return client_->remove(key); }
  [[nodiscard]] std::string description() const override { return client_->description(); }

 protected:
  std::string do_get(const std::string& key, milliseconds timeout) override {
    return client_->get(key, timeout);
  }
  void do_wait(const std::vector<std::string>& keys, milliseconds timeout) override {
    client_->wait(keys, timeout);
  }

 private:
  // Declared first, destroyed last: the client closes its connections before the server stops.
  std::unique_ptr<TcpStoreServer> server_;
  std::unique_ptr<TcpStore> client_;
};

enum class Backend { kGloo, kMpi, kShm };

Backend resolve_backend(const JobEnv& env, const std::string& requested,
                        const std::string& variable) {
  if (requested == "gloo") return Backend::kGloo;
  if (requested == "mpi") return Backend::kMpi;
  if (requested == "shm") return Backend::kShm;
  if (requested != "auto") {
    env_error(variable, "\"" + requested + "\" is not one of auto, gloo, mpi, shm");
  }
  const bool under_mpi = env.launcher == JobLauncher::kOpenMpi || env.launcher == JobLauncher::kPmi;
  if (under_mpi) return Backend::kMpi;
  const bool one_host = env.local_world_size && *env.local_world_size == env.world_size;
  if (one_host && env.world_size > 1) return Backend::kShm;
  // Across hosts, shared memory within each and Gloo between them; only where the ranks of a host
  // are known to be consecutive (the tessera launcher numbers them so; srun's cyclic
  // distribution, for one, does not).
  // Every rank must choose alike: from the job's shape where the launcher says it (hosts may run
  // different numbers of ranks), else from this host's.
  const bool several_per_host =
      env.nnodes ? env.world_size > *env.nnodes : env.local_world_size && *env.local_world_size > 1;
  if (several_per_host && env.launcher == JobLauncher::kTessera) {
    return Backend::kShm;
  }
  return Backend::kGloo;
}

std::shared_ptr<Store> connect_store(const JobEnv& env, milliseconds timeout) {
  if (env.store_host.empty()) {
    env_error(
        "TESSERA_STORE_ADDR",
        env.launcher == JobLauncher::kTessera
            ? std::string("is not set (the tessera launcher sets it)")
            : detail::concat("is not set, and neither are MASTER_ADDR and MASTER_PORT: under ",
                             launcher_name(env.launcher),
                             " rank 0 hosts the rendezvous store at that address; export "
                             "e.g. MASTER_ADDR=<first host> MASTER_PORT=29500"));
  }
  if (env.token.empty()) {
    env_error("TESSERA_JOB_TOKEN",
              "is not set: every connection to the rendezvous store presents the job's token; "
              "export the same value (16+ random characters) to every rank");
  }
  const std::string address = format_address(env.store_host, env.store_port);
  std::unique_ptr<TcpStoreServer> server;
  if (env.hosts_store) {
    try {
      server = std::make_unique<TcpStoreServer>(TcpStoreServerOptions{
          .host = env.store_host, .port = env.store_port, .token = env.token});
    } catch (const CommError& e) {
      throw CommError(detail::concat("rank 0 hosts the rendezvous store at ", address, " (",
                                     env.store_source, ") but cannot listen there: ", e.what()));
    }
  }
  std::unique_ptr<TcpStore> client;
  try {
    client = std::make_unique<TcpStore>(
        TcpStoreOptions{.host = env.store_host,
                        .port = env.store_port,
                        .token = env.token,
                        .connect_timeout = std::min(timeout, kDefaultConnectTimeout),
                        .timeout = timeout});
  } catch (const TimeoutError& e) {
    throw TimeoutError(detail::concat(
        "rank ", env.rank, ": the rendezvous store at ", address, " (", env.store_source,
        ") did not answer; ",
        env.launcher == JobLauncher::kTessera ? "the launcher hosts it" : "rank 0 hosts it", ": ",
        e.what()));
  }
  std::shared_ptr<Store> store;
  if (server) {
    store = std::make_shared<HostedStore>(std::move(server), std::move(client));
  } else {
    store = std::move(client);
  }
  return std::make_shared<PrefixStore>("job/attempt-" + std::to_string(env.attempt),
                                       std::move(store));
}

// Under srun without MASTER_ADDR, as PyTorch Lightning does: the first host of the job step's
// nodes, and a port from the job id (the same on every rank, different for most concurrent jobs).
void slurm_store_address(const EnvLookup& lookup, JobEnv& job) {
  const char* list_name =
      lookup("SLURM_STEP_NODELIST") ? "SLURM_STEP_NODELIST" : "SLURM_JOB_NODELIST";
  const std::optional<std::string> list = lookup(list_name);
  const std::optional<int> id = read_int(lookup, "SLURM_JOB_ID", 0);
  if (!list || !id) return;
  const std::optional<std::string> first = slurm_first_host(*list);
  if (!first) env_error(list_name, "\"" + *list + "\" is not a Slurm node list");
  job.store_host = *first;
  job.store_port = kSlurmBasePort + *id % kSlurmPorts;
  job.store_source = detail::concat(list_name, " and SLURM_JOB_ID");
}

}  // namespace

const char* launcher_name(JobLauncher launcher) {
  switch (launcher) {
    case JobLauncher::kTessera:
      return "the tessera launcher";
    case JobLauncher::kOpenMpi:
      return "mpirun (Open MPI)";
    case JobLauncher::kPmi:
      return "a PMI launcher (mpiexec)";
    case JobLauncher::kSlurm:
      return "srun (Slurm)";
  }
  return "an unknown launcher";
}

std::optional<JobEnv> parse_job_env(const EnvLookup& lookup) {
  JobEnv job;
  bool found = false;
  for (const RankVariables& vars : kRankVariables) {
    if (!lookup(vars.rank)) continue;
    found = true;
    job.launcher = vars.launcher;
    job.rank = *read_int(lookup, vars.rank, 0);
    job.world_size = require_int(lookup, vars.size, 1, vars.rank);
    if (job.rank >= job.world_size) {
      env_error(vars.rank,
                detail::concat(job.rank, " is not below ", vars.size, "=", job.world_size));
    }
    job.local_rank = read_int(lookup, vars.local_rank, 0);
    job.local_world_size = read_int(lookup, vars.local_size, 1);
    if (job.local_rank.has_value() != job.local_world_size.has_value()) {
      const char* missing = job.local_rank ? vars.local_size : vars.local_rank;
      const char* present = job.local_rank ? vars.local_rank : vars.local_size;
      env_error(missing, detail::concat("is not set, but ", present, " is"));
    }
    if (job.local_rank) {
      if (*job.local_rank >= *job.local_world_size) {
        env_error(vars.local_rank, detail::concat(*job.local_rank, " is not below ",
                                                  vars.local_size, "=", *job.local_world_size));
      }
      if (*job.local_world_size > job.world_size) {
        env_error(vars.local_size, detail::concat(*job.local_world_size, " exceeds ", vars.size,
                                                  "=", job.world_size));
      }
    }
    break;
  }
  if (!found && lookup("SLURM_PROCID") && lookup("SLURM_STEP_NUM_TASKS")) {
    found = true;
    job.launcher = JobLauncher::kSlurm;
    job.rank = *read_int(lookup, "SLURM_PROCID", 0);
    job.world_size = *read_int(lookup, "SLURM_STEP_NUM_TASKS", 1);
    if (job.rank >= job.world_size) {
      env_error("SLURM_PROCID",
                detail::concat(job.rank, " is not below SLURM_STEP_NUM_TASKS=", job.world_size));
    }
    job.local_rank = read_int(lookup, "SLURM_LOCALID", 0);
    if (auto per_node = lookup("SLURM_STEP_TASKS_PER_NODE")) {
      job.local_world_size =
          slurm_tasks_on_node(*per_node, read_int(lookup, "SLURM_NODEID", 0).value_or(-1));
    }
    if (!job.local_rank || !job.local_world_size || *job.local_rank >= *job.local_world_size) {
      job.local_rank.reset();  // Unknown rather than wrong.
      job.local_world_size.reset();
    }
  }
  if (!found) return std::nullopt;

  if (auto addr = lookup("TESSERA_STORE_ADDR")) {
    std::tie(job.store_host, job.store_port) = parse_address("TESSERA_STORE_ADDR", *addr);
    job.store_source = "TESSERA_STORE_ADDR";
  } else if (job.launcher != JobLauncher::kTessera) {
    auto host = lookup("MASTER_ADDR");
    auto port = lookup("MASTER_PORT");
    if (host.has_value() != port.has_value()) {
      env_error(host ? "MASTER_PORT" : "MASTER_ADDR",
                detail::concat("is not set, but ", host ? "MASTER_ADDR" : "MASTER_PORT", " is"));
    }
    if (host) {
      std::tie(job.store_host, job.store_port) =
          parse_address("MASTER_ADDR/MASTER_PORT", *host + ":" + *port);
      job.store_source = "MASTER_ADDR/MASTER_PORT";
    } else if (job.launcher == JobLauncher::kSlurm) {
      slurm_store_address(lookup, job);
    }
  }
  if (job.launcher == JobLauncher::kSlurm) {
    job.requeued = read_int(lookup, "SLURM_RESTART_COUNT", 0).value_or(0) > 0;
  }
  job.hosts_store = job.launcher != JobLauncher::kTessera && job.rank == 0;
  job.token = lookup("TESSERA_JOB_TOKEN").value_or("");
  job.job_id = lookup("TESSERA_JOB_ID").value_or("");
  if (!is_job_id(job.job_id)) {
    env_error("TESSERA_JOB_ID", "\"" + job.job_id + "\" is not 1-64 letters, digits, '-' or '_'");
  }
  job.backend = lookup("TESSERA_BACKEND").value_or("");
  job.iface_host = lookup("TESSERA_IFACE_HOST").value_or("");
  job.iface = lookup("TESSERA_IFACE").value_or("");
  if (auto text = lookup("TESSERA_COMM_TIMEOUT_S")) {
    char* end = nullptr;
    double seconds = std::strtod(text->c_str(), &end);
    if (end == text->c_str() || *end != '\0' || !std::isfinite(seconds) || seconds <= 0 ||
        seconds > 1e7) {
      env_error("TESSERA_COMM_TIMEOUT_S", "\"" + *text + "\" is not a positive number of seconds");
    }
    job.timeout = milliseconds(std::max<long long>(1, std::llround(seconds * 1000.0)));
  }
  job.attempt = read_int(lookup, "TESSERA_ATTEMPT", 0).value_or(0);
  if (job.launcher == JobLauncher::kTessera) job.nnodes = read_int(lookup, "TESSERA_NNODES", 1);
  return job;
}

std::optional<JobEnv> job_env_from_environment() {
  return parse_job_env([](const char* name) { return env_string(name); });
}

std::unique_ptr<ProcessGroup> init_from_env(InitOptions options) {
  std::optional<JobEnv> env = job_env_from_environment();
  if (!env) {
    env_error("TESSERA_RANK",
              "is not set, nor is any launcher's rank variable (OMPI_COMM_WORLD_RANK, PMI_RANK, "
              "SLURM_PROCID under srun): this process is not one rank of a job; start it with "
              "`tessera train CONFIG --nproc N`, mpirun or srun");
  }
  return init_process_group(*env, std::move(options));
}

std::unique_ptr<ProcessGroup> init_process_group(const JobEnv& env, InitOptions options) {
  // Gloo writes to sockets with plain write(): a peer that died would raise SIGPIPE, whose default
  // action kills this rank without a word instead of failing its collective with an error naming
  // the peer. A handler the program installed itself is left alone.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, nullptr);
  }
  if (env.timeout) options.group.timeout = *env.timeout;
  const std::string requested = env.backend.empty() ? options.backend : env.backend;
  const Backend backend =
      resolve_backend(env, requested, env.backend.empty() ? "backend" : "TESSERA_BACKEND");

  if (backend == Backend::kMpi) {
    std::unique_ptr<ProcessGroup> group = make_mpi_group(options.group);
    if (group->rank() != env.rank || group->size() != env.world_size) {
      throw CommError(detail::concat("MPI says this process is rank ", group->rank(), " of ",
                                     group->size(), ", but ", launcher_name(env.launcher),
                                     " says rank ", env.rank, " of ", env.world_size));
    }
    return group;
  }

  std::shared_ptr<Store> store = connect_store(env, options.group.timeout);
  // The prefix lets the launcher remove a segment that a worker dying during setup left behind.
  // Never the token: names in /dev/shm are visible to every local user.
  const std::string shm_prefix =
      env.job_id.empty() ? std::string("tessera") : "tessera-" + env.job_id;
  const bool several_hosts = env.local_world_size && *env.local_world_size < env.world_size;
  if (backend == Backend::kShm && !several_hosts) {
    return make_shm_group(std::move(store), env.rank, env.world_size, options.group,
                          ShmOptions{.segment_name_prefix = shm_prefix});
  }
  GlooOptions gloo_options;
  if (!env.iface.empty()) {
    gloo_options.iface = env.iface;
  } else if (!env.iface_host.empty()) {
    gloo_options.hostname = env.iface_host;
  } else {
    gloo_options.hostname = local_address_towards(env.store_host, env.store_port);
  }
  if (backend == Backend::kShm) {
    if (!env.local_rank) {
      env_error("TESSERA_LOCAL_RANK", "is not known, but backend \"shm\" across hosts needs it");
    }
    std::unique_ptr<ProcessGroup> global =
        make_gloo_group(store, env.rank, env.world_size, options.group, gloo_options);
    return make_hierarchical_group(std::move(global), std::move(store), *env.local_rank,
                                   *env.local_world_size,
                                   ShmOptions{.segment_name_prefix = shm_prefix});
  }
  return make_gloo_group(std::move(store), env.rank, env.world_size, options.group, gloo_options);
}

std::string service_host(const JobEnv& env) {
  if (!env.iface_host.empty()) return env.iface_host;
  if (!env.store_host.empty()) return local_address_towards(env.store_host, env.store_port);
  return "127.0.0.1";
}

}  // namespace tessera::comm
