#include "process.h"

#include <gtest/gtest.h>

#include "tessera/train/checkpoint.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

#ifndef TESSERA_BINARY
#error "TESSERA_BINARY must name the tessera binary under test"
#endif

namespace tessera::e2e {
namespace {

bool is_launcher_variable(std::string_view entry) {
  constexpr std::array<std::string_view, 7> kPrefixes = {
      "TESSERA_", "OMPI_", "PMI_", "PMIX_", "SLURM_", "MASTER_ADDR=", "MASTER_PORT="};
  for (std::string_view p : kPrefixes) {
    if (entry.substr(0, p.size()) == p) return true;
  }
  return false;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string tessera_binary() { return TESSERA_BINARY; }

Process::Process(std::vector<std::string> args, std::vector<std::string> env,
                 const fs::path& log_stem)
    : out_path_(log_stem.string() + ".out"), err_path_(log_stem.string() + ".err") {
  std::vector<std::string> full_env;
  for (char** p = environ; *p != nullptr; ++p) {
    if (!is_launcher_variable(*p)) full_env.emplace_back(*p);
  }
  full_env.insert(full_env.end(), env.begin(), env.end());
  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(full_env);
  const int out_fd = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("cannot create " + out_path_.string());
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls until exec: the test may have threads.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
}

std::optional<int> Process::wait(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return WEXITSTATUS(status_);
}

std::string Process::out() const { return read_file(out_path_); }
std::string Process::err() const { return read_file(err_path_); }

bool Process::wait_for_output(const std::string& text, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (out().find(text) != std::string::npos || err().find(text) != std::string::npos) {
      return true;
    }
    if (!reaped_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    if (reaped_) {
      return out().find(text) != std::string::npos || err().find(text) != std::string::npos;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool pid_alive(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  // "PID (COMM) STATE ...": COMM may hold spaces, so read after the last ')'.
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

std::optional<pid_t> worker_pid(const std::string& launcher_err, int rank) {
  std::smatch m;
  std::regex pattern("rank " + std::to_string(rank) + " \\(pid ([0-9]+)\\)");
  if (!std::regex_search(launcher_err, m, pattern)) return std::nullopt;
  return static_cast<pid_t>(std::stol(m[1]));
}

std::vector<pid_t> worker_pids(const std::string& launcher_err) {
  std::vector<pid_t> pids;
  std::string first_line = launcher_err.substr(0, launcher_err.find("started rank"));
  std::string started = launcher_err.substr(first_line.size());
  started = started.substr(0, started.find('\n'));
  std::regex pattern("\\(pid ([0-9]+)\\)");
  for (auto it = std::sregex_iterator(started.begin(), started.end(), pattern);
       it != std::sregex_iterator(); ++it) {
    pids.push_back(static_cast<pid_t>(std::stol((*it)[1])));
  }
  return pids;
}

std::string store_address(const std::string& launcher_err) {
  std::smatch m;
  if (!std::regex_search(launcher_err, m, std::regex("store at ([^;\\s]+);"))) return "";
  return m[1];
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int count_lines_with(const std::string& text, const std::string& needle) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

TrainingJob::TrainingJob(const std::string& name)
    : dir_(fs::temp_directory_path() / ("tessera_e2e_" + name + "_" + std::to_string(::getpid()))) {
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  std::ofstream out(dir_ / "train.csv");
  out << "a,b,c,d,label\n";
  // Two separable classes with deterministic noise: no dependence on tessera's generators.
  unsigned state = 12345;
  auto noise = [&] {
    state = state * 1103515245u + 12345u;
    return static_cast<double>((state >> 16) % 1000) / 1000.0 - 0.5;
  };
  for (int r = 0; r < 240; ++r) {
    const int label = r % 2;
    for (int f = 0; f < 4; ++f) out << (f % 2 == label ? 1.0 : -1.0) + noise() << ",";
    out << label << "\n";
  }
}

TrainingJob::~TrainingJob() {
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::string environment_of(pid_t pid, const std::string& name) {
  const std::string environment = read_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = name + "=";
  for (std::size_t at = 0; at < environment.size();) {
    const std::size_t end = std::min(environment.find('\0', at), environment.size());
    if (environment.compare(at, key.size(), key) == 0) {
      return environment.substr(at + key.size(), end - at - key.size());
    }
    at = end + 1;
  }
  return "";
}

fs::path TrainingJob::config(int epochs, int log_every, const std::string& name,
                             const std::string& strategy) const {
  fs::path path = dir_ / (name + ".toml");
  std::ofstream out(path);
  out << "[model]\n"
         "layers = [{ type = \"linear\", out = 8 }, { type = \"tanh\" }, { type = \"linear\", "
         "out = 2 }]\n"
         "[data]\n"
      << "train = \"csv:" << (dir_ / "train.csv").string() << "\"\n"
      << "test = \"\"\nbatch_size = 48\n"
         "[optimizer]\nlr = 0.05\n"
         "[train]\n"
      << "epochs = " << epochs << "\nlog_every = " << log_every << "\nseed = 3\n"
      << "run_dir = \"" << (dir_ / "run").string() << "\"\n"
      << "[parallel]\nstrategy = \"" << strategy << "\"\n";
  return path;
}

std::string model_of(const fs::path& checkpoint) {
  return train::read_checkpoint(checkpoint.string()).section("model");
}

Finished run_tessera(std::vector<std::string> args, const fs::path& log_stem,
                     milliseconds timeout) {
  args.insert(args.begin(), tessera_binary());
  Process process(args, {}, log_stem);
  const auto code = process.wait(timeout);
  EXPECT_TRUE(code.has_value()) << "tessera " << args[1] << " did not finish in " << timeout.count()
                                << " ms";
  return {code.value_or(-1), process.out(), process.err()};
}

std::string test_name() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

}  // namespace tessera::e2e
