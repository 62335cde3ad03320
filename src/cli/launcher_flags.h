#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "launcher.h"

namespace tessera::cli {

// The launcher's command-line options, shared by `tessera train` and `tessera launch`.
struct LauncherFlags {
  int nproc = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string rdzv;
  std::string backend;
  std::string token_file;
  std::string refused_token;  // --token, which is refused: see launch_options()
  double grace_s = 5.0;
  int max_restarts = 0;
};

// Adds --nproc, --nnodes, --node-rank, --rdzv, --backend, --token-file, --grace and
// --max-restarts to `cmd` (in
// its "Launcher" group), writing into `flags`; the help texts of --nproc and --backend say where
// their defaults come from.
void add_launcher_flags(CLI::App& cmd, LauncherFlags& flags, const std::string& nproc_help,
                        const std::string& backend_help);

// The options the flags describe: `nproc` workers, `backend` unless --backend was given, the
// token from --token-file, else $TESSERA_JOB_TOKEN: never from the command line, which every local
// user can read (ps, /proc/PID/cmdline); a --token throws ConfigError saying so. Throws
// ConfigError when the token file cannot be read or grants any access to group or others.
[[nodiscard]] LaunchOptions launch_options(const LauncherFlags& flags, const CLI::App& cmd,
                                           int nproc, const std::string& backend);

// `args` (argv[0] first) without the launcher's options and their values ("--nproc 4",
// "--nproc=4", ...), up to a "--" that ends the options.
[[nodiscard]] std::vector<std::string> strip_launcher_options(const std::vector<std::string>& args);

// `tessera launch`'s command line (argv[0] first) splits where the program begins: after a "--",
// else at the first word from index `from` on that is neither a launcher option nor its value.
// Returns the program's part (empty when there is none) and leaves the rest in `args`.
[[nodiscard]] std::vector<std::string> take_launched_program(std::vector<std::string>& args,
                                                             std::size_t from);

}  // namespace tessera::cli
