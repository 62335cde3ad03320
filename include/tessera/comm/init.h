#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tessera/comm/process_group.h"

namespace tessera::comm {

// Who started this process as one rank of a job, as told by its environment.
enum class JobLauncher {
  kTessera,  // `tessera train --nproc`: TESSERA_RANK, TESSERA_WORLD_SIZE, ...
  kOpenMpi,  // mpirun / mpiexec of Open MPI: OMPI_COMM_WORLD_*
  kPmi,      // a PMI launcher (MPICH's or Intel MPI's mpiexec): PMI_RANK, PMI_SIZE
  kSlurm,    // srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID
};

// "the tessera launcher", "mpirun (Open MPI)", ...: for messages.
[[nodiscard]] const char* launcher_name(JobLauncher launcher);

// What the environment says about this rank and how to reach the others. Plain data: reading it
// connects to nothing.
struct JobEnv {
  JobLauncher launcher = JobLauncher::kTessera;
  int rank = 0;
  int world_size = 1;
  // This rank's position among the ranks on its host, when the launcher says (the tessera
  // launcher, Open MPI, Slurm and Hydra do); nullopt when unknown.
  std::optional<int> local_rank;
  std::optional<int> local_world_size;
  // TESSERA_NNODES: the hosts in the job (the tessera launcher says; hosts of an elastic job may
  // run different numbers of ranks); nullopt when unknown.
  std::optional<int> nnodes;
  // The rendezvous store, "HOST" and port; empty host when the environment names none (the MPI
  // backend needs none).
  std::string store_host;
  int store_port = 0;
  // Which variables gave the store's address, for messages: "TESSERA_STORE_ADDR" or
  // "MASTER_ADDR/MASTER_PORT".
  std::string store_source;
  // True when this process must host the store: rank 0 under mpirun or srun. Under the tessera
  // launcher the launcher hosts it.
  bool hosts_store = false;
  // TESSERA_JOB_TOKEN: every store connection proves it holds it. Empty when unset.
  std::string token;
  // TESSERA_JOB_ID: names this job's shared memory on this host (not a secret: /dev/shm is
  // listable by everyone), so that the launcher can remove what a crashed worker left. Set by the
  // tessera launcher; empty when unset.
  std::string job_id;
  // TESSERA_BACKEND ("auto", "gloo", "mpi", "shm"); empty when unset.
  std::string backend;
  // TESSERA_IFACE_HOST: the address this rank's transport binds to and advertises; empty: the
  // local address of the route towards the store (127.0.0.1 when the store is on loopback).
  std::string iface_host;
  // TESSERA_IFACE: a network interface name for the transport instead ("eth1"); empty when unset.
  std::string iface;
  // TESSERA_COMM_TIMEOUT_S: deadline of every collective and of the rendezvous; nullopt: the
  // caller's GroupOptions::timeout.
  std::optional<std::chrono::milliseconds> timeout;
  // TESSERA_ATTEMPT (default 0): a restarted job runs on a fresh key space of the same store,
  // "job/attempt-<N>".
  int attempt = 0;
  // Under Slurm, SLURM_RESTART_COUNT > 0: the job was requeued and goes on from its checkpoint.
  bool requeued = false;
};

// Looks up one environment variable: nullopt when unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// Reads a JobEnv through `lookup` (for tests; job_env_from_environment() reads the process's own
// environment). Returns nullopt when no launcher's rank variable is set: the process is not part of
// a job. The first launcher found decides, in the order TESSERA_RANK, OMPI_COMM_WORLD_RANK,
// PMI_RANK, SLURM_PROCID with SLURM_STEP_NUM_TASKS (srun sets both; a batch script alone sets only
// SLURM_PROCID and is not a job step). Throws ConfigError ("environment: VARIABLE: what is wrong")
// when a variable is missing, malformed or inconsistent with another: a rank without a size, a rank
// outside [0, size), a store address without a port.
[[nodiscard]] std::optional<JobEnv> parse_job_env(const EnvLookup& lookup);
[[nodiscard]] std::optional<JobEnv> job_env_from_environment();

struct InitOptions {
  // Name, timeout and consistency check of the group. A TESSERA_COMM_TIMEOUT_S in the environment
  // replaces group.timeout.
  GroupOptions group;
  // The backend when TESSERA_BACKEND is unset (e.g. a config's [parallel] backend): "auto",
  // "gloo", "mpi" or "shm" ("shm" across hosts: shared memory within each host, Gloo between
  // them; the ranks of a host must be numbered consecutively). auto: MPI under mpirun or a PMI
  // launcher when tessera was built with it; else shared memory when every rank is on one host;
  // else, under the tessera launcher with several ranks per host, shm across hosts; else Gloo.
  std::string backend = "auto";
};

// Joins the job this process's environment describes and returns its world group. Collective:
// every rank calls it. Throws ConfigError when the environment describes no job or describes it
// wrongly (naming the variable), TimeoutError naming the store's address or the ranks that did not
// arrive within the timeout, CommError when a backend was asked for that this build lacks, the
// store refuses the token, or rank 0 cannot listen at the store's address.
//
// Rendezvous: the ranks meet in the TcpStore at TESSERA_STORE_ADDR (host:port) or, under mpirun
// and srun, at MASTER_ADDR:MASTER_PORT; there rank 0 hosts the store itself (binding that address)
// and keeps it alive as long as its group. TESSERA_JOB_TOKEN must be set for a store.
//
// Sets SIGPIPE to be ignored when it has the default action: a peer's death must fail this
// rank's collectives with an error, not kill the process (Gloo writes to sockets with write()).
[[nodiscard]] std::unique_ptr<ProcessGroup> init_from_env(InitOptions options = {});

// The address a service of this process (a parameter server) listens on and advertises to the
// job: TESSERA_IFACE_HOST when set, else the local address of the route towards the store, else
// (no store: MPI) 127.0.0.1.
[[nodiscard]] std::string service_host(const JobEnv& env);

// As init_from_env, from an already read environment.
[[nodiscard]] std::unique_ptr<ProcessGroup> init_process_group(const JobEnv& env,
                                                               InitOptions options);

}  // namespace tessera::comm
