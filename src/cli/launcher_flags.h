#pragma once

#include <string>

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
  std::string token;
  double grace_s = 5.0;
};

// Adds --nproc, --nnodes, --node-rank, --rdzv, --backend, --token and --grace to `cmd` (in its
// "Launcher" group), writing into `flags`; the help texts of --nproc and --backend say where
// their defaults come from.
void add_launcher_flags(CLI::App& cmd, LauncherFlags& flags, const std::string& nproc_help,
                        const std::string& backend_help);

// The options the flags describe: `nproc` workers, `backend` unless --backend was given, the
// token from --token, else $TESSERA_JOB_TOKEN (the environment keeps it out of `ps`).
[[nodiscard]] LaunchOptions launch_options(const LauncherFlags& flags, const CLI::App& cmd,
                                           int nproc, const std::string& backend);

}  // namespace tessera::cli
