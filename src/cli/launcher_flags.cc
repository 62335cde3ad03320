#include "launcher_flags.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "tessera/core/env.h"
#include "tessera/core/error.h"

namespace tessera::cli {
namespace {

// --token is refused (launch_options), but recognised so that its value is not taken for the
// program.
constexpr std::string_view kLauncherOptions[] = {
    "--nproc", "--nnodes", "--node-rank",    "--rdzv",      "--backend",      "--token-file",
    "--token", "--grace",  "--max-restarts", "--rdzv-wait", "--rdzv-timeout", "--spares"};
// A token is a line of a few dozen characters; a larger file is something else.
constexpr std::size_t kMaxTokenFileBytes = 4096;

[[noreturn]] void token_file_error(const std::string& path, const std::string& message) {
  throw ConfigError("command line", 0, "--token-file", "\"" + path + "\" " + message);
}

// The token in `path` (one line; its newline dropped). Checked on the open file, not its name,
// so that nothing can swap the file between the check and the read.
std::string read_token_file(const std::string& path) {
  // O_NONBLOCK: a FIFO under that name must not hang the launcher.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) token_file_error(path, "cannot be opened: " + std::string(std::strerror(errno)));
  const struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    token_file_error(path, "is not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    token_file_error(path, std::string("has mode ") + mode +
                               ": other users may read or change it; chmod 600 it (whoever holds "
                               "the token can join the job)");
  }
  std::string token;
  char buffer[256];
  ssize_t n = 0;
  while (token.size() <= kMaxTokenFileBytes && (n = ::read(fd, buffer, sizeof(buffer))) > 0) {
    token.append(buffer, static_cast<std::size_t>(n));
  }
  if (n < 0) token_file_error(path, "cannot be read: " + std::string(std::strerror(errno)));
  if (token.size() > kMaxTokenFileBytes) token_file_error(path, "is too long to hold a token");
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) token_file_error(path, "is empty");
  return token;
}

struct Range {
  int min = 1;
  int max = 1;
};

// "N" or "MIN:MAX", each from 1 to `limit`.
Range parse_range(const std::string& option, const std::string& text, int limit) {
  const auto number = [&](const std::string& part) {
    int v = 0;
    std::size_t used = 0;
    try {
      v = std::stoi(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != part.size() || v < 1 || v > limit) {
      throw ConfigError(
          "command line", 0, option,
          "\"" + text + "\" is not N or MIN:MAX with 1 <= MIN <= MAX <= " + std::to_string(limit));
    }
    return v;
  };
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) {
    const int n = number(text);
    return {n, n};
  }
  const Range r{number(text.substr(0, colon)), number(text.substr(colon + 1))};
  if (r.min > r.max) {
    throw ConfigError("command line", 0, option,
                      "\"" + text + "\": MIN is above MAX (MIN:MAX, e.g. 2:4)");
  }
  return r;
}

}  // namespace

comm::HostPort parse_rdzv(const std::string& text) {
  const std::optional<comm::HostPort> address = comm::parse_host_port(text);
  if (!address) {
    throw ConfigError("command line", 0, "--rdzv",
                      "\"" + text + "\" is not HOST:PORT (an IPv6 address as [ADDR]:PORT)");
  }
  return *address;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

void check_token(const std::string& token, const std::string& where) {
  constexpr std::size_t kMinTokenLength = 16;
  const bool safe = std::all_of(token.begin(), token.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
  if (!safe || token.size() < kMinTokenLength) {
    throw ConfigError("command line", 0, where,
                      "the job token must be at least 16 characters of A-Z, a-z, 0-9, - and _ "
                      "(e.g. the output of `od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'`)");
  }
}

void add_launcher_flags(CLI::App& cmd, LauncherFlags& flags, const std::string& nproc_help,
                        const std::string& backend_help) {
  const char* group = "Launcher";
  cmd.add_option("--nproc", flags.nproc,
                 nproc_help +
                     "; MIN:MAX: an elastic job that goes on with one fewer after a "
                     "worker fails, down to MIN")
      ->group(group);
  cmd.add_option("--nnodes", flags.nnodes,
                 "Hosts in the job, each running this command; MIN:MAX: an elastic job that hosts "
                 "may leave (down to MIN) and join (up to MAX), node ranks given at the "
                 "rendezvous")
      ->group(group);
  cmd.add_option("--node-rank", flags.node_rank,
                 "This host's index, 0 .. nnodes-1 (a job of fixed size; an elastic job numbers "
                 "its hosts itself)")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--rdzv", flags.rdzv,
                 "HOST:PORT of the rendezvous store, hosted there by node 0's launcher (by the "
                 "agent on HOST in an elastic job) (required with several hosts; default on one "
                 "host: 127.0.0.1 and a free port)")
      ->group(group);
  cmd.add_option("--backend", flags.backend, backend_help)
      ->check(CLI::IsMember({"auto", "gloo", "mpi", "shm"}))
      ->group(group);
  cmd.add_option("--token-file", flags.token_file,
                 "File holding the job token every rank proves to the store (readable by you "
                 "alone; default: $TESSERA_JOB_TOKEN, else generated; required, and the same on "
                 "every host, with --nnodes > 1)")
      ->group(group);
  // Not offered: caught only to say why, since a token given here is readable by every user.
  cmd.add_option("--token", flags.refused_token)->group("");
  cmd.add_option("--grace", flags.grace_s,
                 "Seconds the other workers get to exit on their own after one fails, and again "
                 "after SIGTERM before SIGKILL")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0))
      ->group(group);
  cmd.add_option("--max-restarts", flags.max_restarts,
                 "Failures the job survives (an elastic job): the workers still alive go on from "
                 "their memory copy of the state, on the hosts still there, new ones taking the "
                 "places left; in a parameter-server job under asp or ssp with --node-rank or a "
                 "fixed size, times a failed server alone is started again")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000))
      ->group(group);
  cmd.add_option("--rdzv-wait", flags.rdzv_wait_s,
                 "Elastic jobs: seconds a rendezvous round waits for more hosts once the fewest "
                 "it needs have come (a host that died never comes)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0))
      ->group(group);
  cmd.add_option("--rdzv-timeout", flags.rdzv_timeout_s,
                 "Elastic jobs: seconds a rendezvous round waits for the fewest hosts it needs "
                 "before the agent gives up")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0))
      ->group(group);
  cmd.add_option("--spares", flags.spares,
                 "Elastic jobs: worker processes this host keeps started, their data loaded, "
                 "standing by to take a failed worker's place at once")
      ->capture_default_str()
      ->check(CLI::Range(0, 64))
      ->group(group);
}

LaunchOptions launch_options(const LauncherFlags& flags, const CLI::App& cmd, int nproc,
                             const std::string& backend) {
  LaunchOptions o;
  const Range procs =
      cmd.count("--nproc") > 0 ? parse_range("--nproc", flags.nproc, 4096) : Range{nproc, nproc};
  const Range nodes = parse_range("--nnodes", flags.nnodes, 65536);
  o.nproc = procs.max;
  o.min_nproc = procs.min;
  o.nnodes = nodes.max;
  o.min_nnodes = nodes.min;
  o.node_rank = flags.node_rank;
  o.elastic = procs.min != procs.max || nodes.min != nodes.max ||
              (flags.max_restarts > 0 && cmd.count("--node-rank") == 0);
  if (o.elastic && cmd.count("--node-rank") > 0) {
    throw ConfigError("command line", 0, "--node-rank",
                      "is not used by an elastic job (--nproc or --nnodes MIN:MAX): its hosts get "
                      "their ranks at the rendezvous; leave it out");
  }
  o.rdzv_wait = std::chrono::milliseconds(std::llround(flags.rdzv_wait_s * 1000.0));
  o.rdzv_timeout = std::chrono::milliseconds(std::llround(flags.rdzv_timeout_s * 1000.0));
  o.rdzv = flags.rdzv;
  o.backend = cmd.count("--backend") ? flags.backend : backend;
  if (cmd.count("--token") > 0) {
    throw ConfigError("command line", 0, "--token",
                      "is not accepted: a token on the command line is readable by every user of "
                      "this host (ps, /proc/PID/cmdline); export TESSERA_JOB_TOKEN or use "
                      "--token-file PATH (a file only you can read)");
  }
  o.token = cmd.count("--token-file") > 0 ? read_token_file(flags.token_file)
                                          : env_string("TESSERA_JOB_TOKEN").value_or("");
  o.grace = std::chrono::milliseconds(std::llround(flags.grace_s * 1000.0));
  o.max_restarts = flags.max_restarts;
  o.spares = flags.spares;
  if (o.spares > 0 && !o.elastic) {
    throw ConfigError("command line", 0, "--spares",
                      "is for elastic jobs (--nproc or --nnodes MIN:MAX, or --max-restarts): a "
                      "job of fixed size places no spare");
  }
  return o;
}

std::vector<std::string> take_launched_program(std::vector<std::string>& args, std::size_t from) {
  std::size_t i = from;
  while (i < args.size()) {
    const std::string& a = args[i];
    if (a == "--") {
      std::vector<std::string> program(args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                       args.end());
      args.resize(i);
      return program;
    }
    if (a.empty() || a[0] != '-') break;
    const bool takes_value = std::find(std::begin(kLauncherOptions), std::end(kLauncherOptions),
                                       a) != std::end(kLauncherOptions);
    i += takes_value ? 2 : 1;
  }
  i = std::min(i, args.size());
  std::vector<std::string> program(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  args.resize(i);
  return program;
}

std::vector<std::string> strip_launcher_options(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i == 0) {
      out.push_back(a);
      continue;
    }
    if (a == "--") {
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    bool launcher_option = false;
    for (std::string_view option : kLauncherOptions) {
      if (a == option) {
        launcher_option = true;
        ++i;  // and its value
        break;
      }
      if (a.size() > option.size() && a.compare(0, option.size(), option) == 0 &&
          a[option.size()] == '=') {
        launcher_option = true;
        break;
      }
    }
    if (!launcher_option) out.push_back(a);
  }
  return out;
}

}  // namespace tessera::cli
