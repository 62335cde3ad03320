// `tessera launch`: any program as the ranks of a job, as torchrun runs a script. The program
// joins with comm::init_from_env(); the launcher does for it what it does for `tessera train`.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "launcher_flags.h"
#include "tessera/comm/init.h"
#include "tessera/core/error.h"

namespace tessera::cli {
namespace {

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// `name` as execvp would find it: a name with a slash is a path, any other is looked up on PATH.
// Resolved here, before any worker starts, so that a typo fails once with a clear message.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return name;
    throw ConfigError("command line", 0, "program", "\"" + name + "\" is not an executable file");
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (executable(candidate)) return candidate;
  }
  throw ConfigError("command line", 0, "program",
                    "\"" + name + "\" was not found on PATH (give a path, e.g. ./" + name + ")");
}

}  // namespace

void add_launch_command(CLI::App& app, std::vector<std::string> program) {
  auto flags = std::make_shared<LauncherFlags>();
  CLI::App* cmd = app.add_subcommand(
      "launch",
      "Run a program as the ranks of a job: tessera launch [OPTIONS] PROGRAM [ARGS...]\n"
      "starts --nproc copies of PROGRAM on this host, each with TESSERA_RANK, TESSERA_WORLD_SIZE,\n"
      "TESSERA_LOCAL_RANK, TESSERA_STORE_ADDR, TESSERA_JOB_TOKEN, TESSERA_JOB_ID and\n"
      "TESSERA_BACKEND in its environment; the program joins with tessera::comm::init_from_env().\n"
      "Output, signals and failures are handled as for `tessera train --nproc`. Examples:\n"
      "  tessera launch --nproc 4 ./my_trainer --epochs 3\n"
      "  tessera launch --nproc 2 --nnodes 2 --node-rank 0 --rdzv 10.0.0.1:29500 \\\n"
      "      --token-file ~/.tessera-token -- ./my_trainer   # or export TESSERA_JOB_TOKEN");
  add_launcher_flags(*cmd, *flags,
                     "Workers to start on this host; each line they print is "
                     "prefixed with [rank R]",
                     "Collectives backend, passed as TESSERA_BACKEND (default: auto)");
  cmd->footer("PROGRAM and everything after it (or after --) is the program's own command line.");
  cmd->callback([flags, cmd, program = std::move(program)] {
    std::vector<std::string> args = program;
    if (args.empty()) {
      throw ConfigError("command line", 0, "program", "missing: say which program to run");
    }
    if (comm::job_env_from_environment()) {
      throw ConfigError("command line", 0, "launch",
                        "this process is already a rank of a job: run the program directly");
    }
    LaunchOptions o = launch_options(*flags, *cmd, 1, "auto");
    o.program = find_program(args.front());
    o.worker_args = std::move(args);
    const int code = o.elastic ? run_elastic_agent(o) : run_launcher(o);
    if (code != 0) throw ExitCode(code);
  });
}

}  // namespace tessera::cli
