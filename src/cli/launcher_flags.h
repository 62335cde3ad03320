#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "launcher.h"
#include "tessera/comm/address.h"

namespace tessera::cli {

// The launcher's command-line options, shared by `tessera train` and `tessera launch`.
struct LauncherFlags {
  std::string nproc;  // N or MIN:MAX
  std::string nnodes = "1";
  int node_rank = 0;
  std::string rdzv;
  std::string backend;
  std::string token_file;
  std::string refused_token;  // --token, which is refused: see launch_options()
  double grace_s = 5.0;
  int max_restarts = 0;
  double rdzv_wait_s = 5.0;
  double rdzv_timeout_s = 300.0;
  int spares = 0;
};

// Adds --nproc, --nnodes, --node-rank, --rdzv, --backend, --token-file, --grace, --max-restarts,
// --rdzv-wait, --rdzv-timeout and --spares to `cmd` (in its "Launcher" group), writing into
// `flags`; the help texts of --nproc and --backend say where their defaults come from.
void add_launcher_flags(CLI::App& cmd, LauncherFlags& flags, const std::string& nproc_help,
                        const std::string& backend_help);

// The options the flags describe: --nproc workers (default `nproc`), `backend` unless --backend
// was given, the token from --token-file, else $TESSERA_JOB_TOKEN: never from the command line,
// which every local user can read (ps, /proc/PID/cmdline); a --token throws ConfigError saying
// so. The job is elastic when --nproc or --nnodes is a range MIN:MAX, or --max-restarts is given
// without --node-rank. Throws ConfigError on a malformed range, --node-rank in an elastic job, and
// when the token file cannot be read or grants any access to group or others.
[[nodiscard]] LaunchOptions launch_options(const LauncherFlags& flags, const CLI::App& cmd,
                                           int nproc, const std::string& backend);

// --rdzv's HOST:PORT; throws ConfigError naming --rdzv when it is not one.
[[nodiscard]] comm::HostPort parse_rdzv(const std::string& text);

// Whether `host` names this host's loopback interface, which other hosts cannot reach.
[[nodiscard]] bool is_loopback(const std::string& host);

// Throws ConfigError naming `where` unless `token` is at least 16 characters of A-Z, a-z, 0-9, -
// and _ (tokens travel in environments and files: safe characters, and long enough that guessing
// one is hopeless).
void check_token(const std::string& token, const std::string& where);

// `args` (argv[0] first) without the launcher's options and their values ("--nproc 4",
// "--nproc=4", ...), up to a "--" that ends the options.
[[nodiscard]] std::vector<std::string> strip_launcher_options(const std::vector<std::string>& args);

// `tessera launch`'s command line (argv[0] first) splits where the program begins: after a "--",
// else at the first word from index `from` on that is neither a launcher option nor its value.
// Returns the program's part (empty when there is none) and leaves the rest in `args`.
[[nodiscard]] std::vector<std::string> take_launched_program(std::vector<std::string>& args,
                                                             std::size_t from);

}  // namespace tessera::cli
