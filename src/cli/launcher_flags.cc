#include "launcher_flags.h"

#include <chrono>
#include <cmath>

#include "tessera/core/env.h"

namespace tessera::cli {

void add_launcher_flags(CLI::App& cmd, LauncherFlags& flags, const std::string& nproc_help,
                        const std::string& backend_help) {
  const char* group = "Launcher";
  cmd.add_option("--nproc", flags.nproc, nproc_help)->check(CLI::Range(1, 4096))->group(group);
  cmd.add_option("--nnodes", flags.nnodes, "Hosts in the job, each running this command")
      ->check(CLI::Range(1, 65536))
      ->group(group);
  cmd.add_option("--node-rank", flags.node_rank, "This host's index, 0 .. nnodes-1")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--rdzv", flags.rdzv,
                 "HOST:PORT of the rendezvous store, hosted by node 0's launcher on that address "
                 "(required with --nnodes > 1; default on one host: 127.0.0.1 and a free port)")
      ->group(group);
  cmd.add_option("--backend", flags.backend, backend_help)
      ->check(CLI::IsMember({"auto", "gloo", "mpi", "shm"}))
      ->group(group);
  cmd.add_option("--token", flags.token,
                 "Job token every rank presents to the store (default: $TESSERA_JOB_TOKEN, else "
                 "generated; required, and the same on every host, with --nnodes > 1)")
      ->group(group);
  cmd.add_option("--grace", flags.grace_s,
                 "Seconds the other workers get to exit on their own after one fails, and again "
                 "after SIGTERM before SIGKILL")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0))
      ->group(group);
}

LaunchOptions launch_options(const LauncherFlags& flags, const CLI::App& cmd, int nproc,
                             const std::string& backend) {
  LaunchOptions o;
  o.nproc = nproc;
  o.nnodes = flags.nnodes;
  o.node_rank = flags.node_rank;
  o.rdzv = flags.rdzv;
  o.backend = cmd.count("--backend") ? flags.backend : backend;
  o.token = cmd.count("--token") ? flags.token : env_string("TESSERA_JOB_TOKEN").value_or("");
  o.grace = std::chrono::milliseconds(std::llround(flags.grace_s * 1000.0));
  return o;
}

}  // namespace tessera::cli
