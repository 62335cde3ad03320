#include "worker_start.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <string_view>
#include <system_error>

#include "agent_channel.h"
#include "supervisor.h"

extern char** environ;

namespace tessera::cli {
namespace {

// What the launcher tells each worker; values of these inherited from the launcher's own
// environment are replaced.
constexpr std::string_view kWorkerVariables[] = {
    "TESSERA_RANK",       "TESSERA_WORLD_SIZE", "TESSERA_LOCAL_RANK", "TESSERA_LOCAL_WORLD_SIZE",
    "TESSERA_STORE_ADDR", "TESSERA_JOB_TOKEN",  "TESSERA_JOB_ID",     "TESSERA_BACKEND",
    "TESSERA_NODE_RANK",  "TESSERA_NNODES",     "TESSERA_RESTART",    "TESSERA_ATTEMPT",
    "TESSERA_ELASTIC",    "TESSERA_AGENT_FD",   "TESSERA_SPARE",      "TESSERA_MAX_RESTARTS"};

}  // namespace

std::vector<std::string> worker_environment(const LaunchOptions& o, const Placement& p,
                                            const Worker& w, const WorkerContext& c) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (std::find(std::begin(kWorkerVariables), std::end(kWorkerVariables), name) ==
        std::end(kWorkerVariables)) {
      env.emplace_back(entry);
    }
  }
  env.push_back("TESSERA_RANK=" + std::to_string(w.rank));
  env.push_back("TESSERA_WORLD_SIZE=" + std::to_string(p.world_size));
  env.push_back("TESSERA_LOCAL_RANK=" + std::to_string(w.local_rank));
  env.push_back("TESSERA_LOCAL_WORLD_SIZE=" + std::to_string(p.nproc));
  env.push_back("TESSERA_NODE_RANK=" + std::to_string(p.node_rank));
  env.push_back("TESSERA_NNODES=" + std::to_string(p.nnodes));
  env.push_back("TESSERA_STORE_ADDR=" + c.store_address);
  env.push_back("TESSERA_JOB_TOKEN=" + c.token);
  env.push_back("TESSERA_JOB_ID=" + c.job_id);
  env.push_back("TESSERA_BACKEND=" + o.backend);
  if (p.attempt != 0) env.push_back("TESSERA_ATTEMPT=" + std::to_string(p.attempt));
  // A parameter server then waits for a lost worker to come back before it ends the job.
  if (o.max_restarts > 0) env.push_back("TESSERA_MAX_RESTARTS=" + std::to_string(o.max_restarts));
  // Our own workers' large buffers on huge pages: where a page fault is slow (virtual machines),
  // fresh buffers cost more than the copies into them, and a recovery that moves a memory copy to
  // another worker touches several. A user's own glibc tunables are left as they are.
  if (o.program.empty() && std::getenv("GLIBC_TUNABLES") == nullptr) {
    env.emplace_back("GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  }
  env.insert(env.end(), c.extra.begin(), c.extra.end());
  return env;
}

std::vector<Worker> start_workers(const LaunchOptions& o, const Placement& p,
                                  const WorkerContext& c, const SignalScope& signals,
                                  int first_local) {
  std::vector<Worker> workers(static_cast<std::size_t>(std::max(0, p.nproc - first_local)));
  std::string started;
  try {
    for (std::size_t k = 0; k < workers.size(); ++k) {
      Worker& w = workers[k];
      w.local_rank = first_local + static_cast<int>(k);
      w.rank = p.first_rank + w.local_rank;
      std::vector<std::string> env = worker_environment(o, p, w, c);
      if (c.channel) env.push_back("TESSERA_AGENT_FD=" + std::to_string(kAgentChannelFd));
      spawn(w, o.program.empty() ? "/proc/self/exe" : o.program, o.worker_args, std::move(env),
            signals, c.channel);
      started += (k ? ", rank " : "rank ") + std::to_string(w.rank) + " (pid " +
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
  if (workers.empty()) return workers;
  say("store at " + c.store_address + "; node " + std::to_string(p.node_rank) + " of " +
      std::to_string(p.nnodes) + ", world size " + std::to_string(p.world_size) + "; started " +
      started);
  return workers;
}

std::vector<Worker> start_spares(const LaunchOptions& o, const Placement& p, const WorkerContext& c,
                                 const SignalScope& signals, int count) {
  std::vector<Worker> spares(static_cast<std::size_t>(std::max(0, count)));
  for (Worker& w : spares) {
    // Its environment names a place of the round, which it does not take: it waits for one.
    w.rank = p.first_rank;
    std::vector<std::string> env = worker_environment(o, p, w, c);
    env.push_back("TESSERA_AGENT_FD=" + std::to_string(kAgentChannelFd));
    env.push_back("TESSERA_SPARE=1");
    w.rank = -1;
    w.spare = true;
    spawn(w, o.program.empty() ? "/proc/self/exe" : o.program, o.worker_args, std::move(env),
          signals, /*with_channel=*/true);
    say("started a spare (pid " + std::to_string(w.pid) + ")");
  }
  return spares;
}

void ShmCleanup::remove_now() const noexcept {
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

}  // namespace tessera::cli
