// ps_bench: push and pull speed of tessera's parameter server (parallel/ps) with servers and
// workers as separate processes on loopback, as ps-lite's benchmark runs them.
//
// The program is its own launcher: for each servers x workers configuration it starts the servers
// (copies of this binary with --role server), reads the port each reports on its stdout, starts
// the workers (--role worker) with their stdin and stdout as a control channel, and steps them
// through the cases together: for each case every worker warms up, then, once all have, every
// worker times its own round trips for at least --min-time and reports them. The launcher prints
// one row per case. Consistency is ASP, so no server ever holds a worker back.
//
//   dense:  one table of SIZE bytes; a round is push_dense of the whole table then pull_dense of it
//   sparse: one table of rows of --dim floats (SGD); a round is push_sparse of a batch of KEYS
//           distinct uniform 64-bit ids then pull_sparse of the same ids. Each worker draws its
//           batch once, so the rows exist after the warm-up and the table stops growing.
//   tcp:    with --roofline, first: the dense sizes sent over raw TCP to an echo process and back
//           (no parameter server), what loopback allows a dense round on this machine.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <list>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>

#include "tessera/comm/tcp_store.h"
#include "tessera/core/error.h"
#include "tessera/parallel/ps/server.h"
#include "tessera/parallel/ps/tables.h"
#include "tessera/parallel/ps/worker.h"

namespace tessera::bench {
namespace {

namespace ps = parallel::ps;
using Clock = std::chrono::steady_clock;

constexpr const char* kTokenVar = "TESSERA_BENCH_PS_TOKEN";  // the job token, for the children
constexpr uint32_t kSparseTable = 1000;                      // dense tables are 1, 2, ...
constexpr float kLr = 1e-3f;
// The longest the launcher waits for one step of a child (a port, a warm-up, a timed case).
constexpr auto kStepTimeout = std::chrono::minutes(5);

struct BenchOptions {
  std::string configs = "1x1,2x2";
  std::string sizes = "4K,64K,1M,16M,64M";
  std::string keys = "1000,10000,100000";
  std::string only = "dense,sparse";
  bool roofline = false;
  bool socket_only = false;
  int64_t dim = 16;
  double min_time = 0.5;
  int min_iters = 5;
  double warmup_time = 0.2;
  int warmup_iters = 3;
  // Set by the launcher for its children.
  std::string role;
  int index = 0;
  int servers = 1;
  int workers = 1;
  std::string connect;  // workers: the servers' host:port, comma-separated
};

std::vector<std::string> split(const std::string& text, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, sep);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// "4K" -> 4096 when `unit` is 1024 (sizes: K, M, G are KiB, MiB, GiB); "10k" -> 10000 when it is
// 1000 (key counts).
int64_t parse_count(const std::string& text, int64_t unit, const char* what) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  int64_t scale = 1;
  const std::string suffix = text.substr(used);
  if (suffix == "K" || suffix == "k") scale = unit;
  if (suffix == "M" || suffix == "m") scale = unit * unit;
  if (suffix == "G" || suffix == "g") scale = unit * unit * unit;
  if (used == 0 || value <= 0 || (suffix.size() > 1) || (suffix.size() == 1 && scale == 1)) {
    throw ValueError(detail::concat("ps_bench: ", what, " '", text, "' is not a positive count"));
  }
  return value * scale;
}

std::vector<int64_t> dense_sizes(const BenchOptions& o) {
  std::vector<int64_t> out;
  for (const auto& s : split(o.sizes)) {
    const int64_t bytes = parse_count(s, 1024, "--sizes");
    if (bytes % 4 != 0) throw ValueError(detail::concat("ps_bench: size ", s, " is not floats"));
    out.push_back(bytes);
  }
  return out;
}

std::vector<int64_t> key_counts(const BenchOptions& o) {
  std::vector<int64_t> out;
  for (const auto& s : split(o.keys)) out.push_back(parse_count(s, 1000, "--keys"));
  return out;
}

bool wants(const BenchOptions& o, const std::string& kind) {
  const auto kinds = split(o.only);
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

// Every process builds the same list: one dense table per size, then the sparse table.
std::vector<ps::TableSpec> make_tables(const BenchOptions& o) {
  std::vector<ps::TableSpec> tables;
  uint32_t id = 1;
  for (const int64_t bytes : dense_sizes(o)) {
    tables.push_back({.id = id++, .kind = ps::TableSpec::Kind::kDense, .size = bytes / 4});
  }
  tables.push_back({.id = kSparseTable,
                    .kind = ps::TableSpec::Kind::kSparse,
                    .dim = o.dim,
                    .init_scale = 0.01f,
                    .seed = 1});
  return tables;
}

// One case a worker times: a label and a round trip.
struct Case {
  std::string kind;  // "dense" or "sparse"
  int64_t size = 0;  // bytes (dense) or keys per batch (sparse)
};

std::vector<Case> make_cases(const BenchOptions& o) {
  std::vector<Case> cases;
  if (wants(o, "dense")) {
    for (const int64_t bytes : dense_sizes(o)) cases.push_back({"dense", bytes});
  }
  if (wants(o, "sparse")) {
    for (const int64_t keys : key_counts(o)) cases.push_back({"sparse", keys});
  }
  return cases;
}

// ---- the control channel: lines over pipes, every read with a deadline ----

class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // The next line without its '\n'. Throws Error naming `who` when the pipe closes or the deadline
  // passes first.
  std::string read(const std::string& who, Clock::time_point deadline) {
    while (true) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) throw Error(detail::concat("ps_bench: timed out waiting for ", who));
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (rc < 0 && errno != EINTR) {
        throw Error(detail::concat("ps_bench: poll: ", std::strerror(errno)));
      }
      if (rc <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error(detail::concat("ps_bench: ", who, " ended without answering"));
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

void write_line(int fd, const std::string& line, const std::string& who) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(detail::concat("ps_bench: cannot write to ", who, ": ", std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
}

// ---- the children ----

void run_server(const BenchOptions& o) {
  const char* token = std::getenv(kTokenVar);
  if (token == nullptr) throw Error(detail::concat("ps_bench: server without ", kTokenVar));
  ps::Server server({.index = o.index,
                     .servers = o.servers,
                     .workers = o.workers,
                     .consistency = ps::Consistency::kAsp,
                     .token = token,
                     .host = "127.0.0.1"},
                    make_tables(o), {});
  write_line(STDOUT_FILENO, detail::concat("port ", server.port()), "the launcher");
  server.wait_until_done(std::chrono::hours(1));
  server.stop();
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

using Round = std::function<void()>;

// The loop every measuring child runs, driven by the launcher over stdin and stdout: "ready";
// then for each case, on "warm" it warms up and says "warm", on "go" it times rounds and reports
// "result ROUNDS ELAPSED_S MEDIAN_S MIN_S MAX_S"; on "done" it returns.
void measure_cases(const BenchOptions& o, const std::vector<Case>& cases,
                   const std::function<Round(const Case&)>& make_round) {
  LineReader control(STDIN_FILENO);
  const auto expect = [&](const char* word) {
    const std::string line = control.read("the launcher", Clock::now() + kStepTimeout);
    if (line != word)
      throw Error(detail::concat("ps_bench: expected ", word, ", got '", line, "'"));
  };
  write_line(STDOUT_FILENO, "ready", "the launcher");
  for (const Case& c : cases) {
    expect("warm");
    const Round round = make_round(c);
    const auto warm_start = Clock::now();
    for (int i = 0; i < o.warmup_iters || seconds(Clock::now() - warm_start) < o.warmup_time; ++i) {
      round();
    }
    write_line(STDOUT_FILENO, "warm", "the launcher");
    expect("go");
    std::vector<double> times;
    const auto start = Clock::now();
    while (static_cast<int>(times.size()) < o.min_iters ||
           seconds(Clock::now() - start) < o.min_time) {
      const auto t0 = Clock::now();
      round();
      times.push_back(seconds(Clock::now() - t0));
    }
    const double elapsed = seconds(Clock::now() - start);
    std::sort(times.begin(), times.end());
    const size_t n = times.size();
    const double median = n % 2 == 1 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    char line[200];
    std::snprintf(line, sizeof(line), "result %zu %.9g %.9g %.9g %.9g", n, elapsed, median,
                  times.front(), times.back());
    write_line(STDOUT_FILENO, line, "the launcher");
  }
  expect("done");
}

std::string token_from_env() {
  const char* token = std::getenv(kTokenVar);
  if (token == nullptr) throw Error(detail::concat("ps_bench: started without ", kTokenVar));
  return token;
}

class BenchWorker {
 public:
  explicit BenchWorker(const BenchOptions& o)
      : options_(o),
        worker_(ps::WorkerOptions{.index = static_cast<uint32_t>(o.index),
                                  .servers = split(o.connect),
                                  .token = token_from_env(),
                                  .shared_memory = !o.socket_only},
                make_tables(o)) {}

  void run() {
    const std::vector<int64_t> sizes = dense_sizes(options_);
    measure_cases(options_, make_cases(options_), [&](const Case& c) {
      if (c.kind == "sparse") return sparse_round(c.size);
      const auto table = static_cast<uint32_t>(
          1 + (std::find(sizes.begin(), sizes.end(), c.size) - sizes.begin()));
      return dense_round(table, c.size / 4);
    });
    worker_.finish();
  }

 private:
  Round dense_round(uint32_t table, int64_t floats) {
    grad_.assign(static_cast<size_t>(floats), 1e-3f);
    out_.assign(static_cast<size_t>(floats), 0.0f);
    return [this, table] {
      worker_.push_dense(table, clock_, grad_, kLr);
      worker_.pull_dense(table, clock_, out_);
      ++clock_;
    };
  }

  Round sparse_round(int64_t n) {
    std::mt19937_64 rng(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(options_.index + 1) +
                        static_cast<uint64_t>(n));
    std::unordered_set<uint64_t> seen;
    keys_.clear();
    while (static_cast<int64_t>(keys_.size()) < n) {
      const uint64_t key = rng();
      if (seen.insert(key).second) keys_.push_back(key);
    }
    grad_.assign(static_cast<size_t>(n * options_.dim), 1e-3f);
    out_.assign(static_cast<size_t>(n * options_.dim), 0.0f);
    return [this] {
      worker_.push_sparse(kSparseTable, clock_, keys_, grad_, kLr);
      worker_.pull_sparse(kSparseTable, clock_, keys_, out_);
      ++clock_;
    };
  }

  BenchOptions options_;
  ps::Worker worker_;
  std::vector<uint64_t> keys_;
  std::vector<float> grad_;
  std::vector<float> out_;
  int64_t clock_ = 0;
};

// ---- the loopback roofline: raw TCP, no parameter server ----
//
// A round sends SIZE bytes to an echo process, which reads them all and sends them back: the
// bytes of a dense push + pull with nothing done to them, over blocking sockets with TCP_NODELAY,
// one system call per message where the kernel allows (the least a TCP transport can do).

void check_sys(bool ok, const char* what) {
  if (!ok) throw Error(detail::concat("ps_bench: ", what, ": ", std::strerror(errno)));
}

void read_exact(int fd, void* data, size_t size) {
  auto* at = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, at, size, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) throw Error("ps_bench: raw TCP peer closed the connection");
    check_sys(n > 0, "recv");
    at += n;
    size -= static_cast<size_t>(n);
  }
}

void write_exact(int fd, const void* data, size_t size) {
  const auto* at = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, at, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n > 0, "send");
    at += n;
    size -= static_cast<size_t>(n);
  }
}

void set_nodelay(int fd) {
  const int one = 1;
  check_sys(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "TCP_NODELAY");
}

void run_echo() {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check_sys(listener >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  check_sys(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "bind");
  check_sys(::listen(listener, 1) == 0, "listen");
  check_sys(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
  write_line(STDOUT_FILENO, detail::concat("port ", ntohs(addr.sin_port)), "the launcher");
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  check_sys(fd >= 0, "accept");
  set_nodelay(fd);
  std::vector<char> buffer;
  while (true) {
    uint64_t size = 0;
    const ssize_t n = ::recv(fd, &size, sizeof(size), MSG_WAITALL);
    if (n == 0) break;  // the client is done
    check_sys(n == sizeof(size), "recv");
    buffer.resize(size);
    read_exact(fd, buffer.data(), size);
    write_exact(fd, buffer.data(), size);
  }
  ::close(fd);
  ::close(listener);
}

void run_raw_client(const BenchOptions& o) {
  const auto colon = o.connect.rfind(':');
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check_sys(fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(o.connect.substr(colon + 1))));
  check_sys(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "connect");
  set_nodelay(fd);
  std::vector<char> out, back;
  measure_cases(o, make_cases(o), [&](const Case& c) -> Round {
    out.assign(static_cast<size_t>(c.size) + 8, 1);
    back.resize(static_cast<size_t>(c.size));
    const uint64_t size = static_cast<uint64_t>(c.size);
    std::memcpy(out.data(), &size, sizeof(size));
    return [&, fd] {
      write_exact(fd, out.data(), out.size());
      read_exact(fd, back.data(), back.size());
    };
  });
  ::close(fd);
}

// ---- the launcher ----

struct Child {
  std::string name;
  pid_t pid = -1;
  int to = -1;    // its stdin (workers), -1 for servers
  int from = -1;  // its stdout
};

// Starts this binary with `args`; its stdin and stdout become pipes to the launcher (stdin
// /dev/null when `control` is false). The child dies with the launcher.
Child spawn(const std::string& name, std::vector<std::string> args, bool control,
            const std::string& token) {
  int out[2];
  int in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || (control && ::pipe2(in, O_CLOEXEC) != 0)) {
    throw Error(detail::concat("ps_bench: pipe: ", std::strerror(errno)));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string token_env = detail::concat(kTokenVar, "=", token);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(detail::concat("ps_bench: fork: ", std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], STDOUT_FILENO);
    if (control) {
      ::dup2(in[0], STDIN_FILENO);
    } else {
      const int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, STDIN_FILENO);
    }
    ::putenv(const_cast<char*>(token_env.c_str()));
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "ps_bench: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out[1]);
  if (control) ::close(in[0]);
  return {name, pid, control ? in[1] : -1, out[0]};
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return detail::concat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return detail::concat("was killed by signal ", WTERMSIG(status));
  return detail::concat("ended with status ", status);
}

// The children of one configuration. On an error the destructor stops whoever is left.
class Job {
 public:
  ~Job() {
    for (Child& c : children_) {
      if (c.pid > 0) {
        ::kill(c.pid, SIGTERM);
        ::waitpid(c.pid, nullptr, 0);
      }
      close_pipes(c);
    }
  }

  Child& add(Child child) { return children_.emplace_back(std::move(child)); }

  // Waits for each child in turn; throws Error naming the first that failed.
  void wait() {
    std::string failure;
    for (Child& c : children_) {
      close_pipes(c);
      int status = 0;
      while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
      }
      c.pid = -1;
      if (status != 0 && failure.empty()) failure = c.name + " " + describe_status(status);
    }
    if (!failure.empty()) throw Error("ps_bench: " + failure);
  }

 private:
  static void close_pipes(Child& c) {
    if (c.to >= 0) ::close(c.to);
    if (c.from >= 0) ::close(c.from);
    c.to = c.from = -1;
  }

  std::list<Child> children_;  // a list: add() hands out references that must stay valid
};

std::vector<std::string> child_args(const BenchOptions& o, const std::string& role, int index,
                                    int servers, int workers) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  char min_time[32], warmup_time[32];
  std::snprintf(min_time, sizeof(min_time), "%g", o.min_time);
  std::snprintf(warmup_time, sizeof(warmup_time), "%g", o.warmup_time);
  std::vector<std::string> args = {self,
                                   "--role",
                                   role,
                                   "--index",
                                   std::to_string(index),
                                   "--servers",
                                   std::to_string(servers),
                                   "--workers",
                                   std::to_string(workers),
                                   "--sizes",
                                   o.sizes,
                                   "--keys",
                                   o.keys,
                                   "--only",
                                   o.only,
                                   "--dim",
                                   std::to_string(o.dim),
                                   "--min-time",
                                   min_time,
                                   "--min-iters",
                                   std::to_string(o.min_iters),
                                   "--warmup-time",
                                   warmup_time,
                                   "--warmup-iters",
                                   std::to_string(o.warmup_iters)};
  if (o.socket_only) args.emplace_back("--socket-only");
  return args;
}

struct Result {
  int64_t iters = 0;
  double elapsed = 0, median = 0, min = 0, max = 0;
};

Result parse_result(const std::string& line, const std::string& who) {
  std::istringstream in(line);
  std::string word;
  Result r;
  in >> word >> r.iters >> r.elapsed >> r.median >> r.min >> r.max;
  if (!in || word != "result") {
    throw Error(detail::concat("ps_bench: ", who, " answered '", line, "'"));
  }
  return r;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Runs the cases on `servers` servers and `workers` workers, or, when `raw`, the dense cases on the
// raw TCP echo pair; prints a row per case.
void run_config(const BenchOptions& o, int servers, int workers, bool raw) {
  const std::string token = comm::make_job_token();
  const std::string server_role = raw ? "echo" : "server";
  const std::string worker_role = raw ? "raw" : "worker";
  Job job;
  std::vector<Child*> server_children, worker_children;
  for (int s = 0; s < servers; ++s) {
    server_children.push_back(
        &job.add(spawn(detail::concat(server_role, " ", s),
                       child_args(o, server_role, s, servers, workers), false, token)));
  }
  std::vector<std::string> addresses;
  for (Child* c : server_children) {
    LineReader reader(c->from);
    const std::string line = reader.read(c->name + "'s port", Clock::now() + kStepTimeout);
    if (line.rfind("port ", 0) != 0) throw Error("ps_bench: " + c->name + " said '" + line + "'");
    addresses.push_back("127.0.0.1:" + line.substr(5));
  }
  std::string connect;
  for (const auto& a : addresses) connect += (connect.empty() ? "" : ",") + a;
  std::vector<LineReader> readers;
  for (int w = 0; w < workers; ++w) {
    std::vector<std::string> args = child_args(o, worker_role, w, servers, workers);
    args.insert(args.end(), {"--connect", connect});
    Child& c = job.add(spawn(detail::concat(worker_role, " ", w), args, true, token));
    worker_children.push_back(&c);
  }
  for (Child* c : worker_children) readers.emplace_back(c->from);
  auto all_say = [&](const std::string& word) {
    std::vector<std::string> lines;
    for (size_t w = 0; w < worker_children.size(); ++w) {
      lines.push_back(readers[w].read(worker_children[w]->name, Clock::now() + kStepTimeout));
      if (!word.empty() && lines.back() != word) {
        throw Error(detail::concat("ps_bench: ", worker_children[w]->name, " said '", lines.back(),
                                   "', expected ", word));
      }
    }
    return lines;
  };
  auto tell_all = [&](const std::string& word) {
    for (Child* c : worker_children) write_line(c->to, word, c->name);
  };
  all_say("ready");
  for (const Case& c : make_cases(o)) {
    tell_all("warm");
    all_say("warm");
    tell_all("go");
    const std::vector<std::string> lines = all_say("");
    // Work per round: bytes moved (push and pull) or keys.
    const double work =
        c.kind == "dense" ? 2.0 * static_cast<double>(c.size) : static_cast<double>(c.size);
    const double unit = c.kind == "dense" ? 1e6 : 1.0;  // MB/s or keys/s
    std::vector<double> medians, rates;
    double aggregate = 0, fastest = 1e300, slowest = 0;
    int64_t iters = 0;
    for (size_t w = 0; w < lines.size(); ++w) {
      const Result r = parse_result(lines[w], worker_children[w]->name);
      medians.push_back(r.median);
      rates.push_back(work / r.median / unit);
      aggregate += work * static_cast<double>(r.iters) / r.elapsed / unit;
      iters += r.iters;
      fastest = std::min(fastest, r.min);
      slowest = std::max(slowest, r.max);
    }
    std::printf("%-7s %7d %7d %10lld %12.4f %14.1f %14.1f %7lld %10.4f %10.4f\n",
                raw ? "tcp" : c.kind.c_str(), servers, workers, static_cast<long long>(c.size),
                1e3 * median_of(medians), median_of(rates), aggregate,
                static_cast<long long>(iters), 1e3 * fastest, 1e3 * slowest);
    std::fflush(stdout);
  }
  tell_all("done");
  job.wait();
}

void run_launcher(const BenchOptions& o) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::pair<int, int>> configs;
  for (const auto& c : split(o.configs)) {
    const auto parts = split(c, 'x');
    if (parts.size() != 2) throw ValueError("ps_bench: --configs takes SERVERSxWORKERS, e.g. 2x2");
    configs.emplace_back(static_cast<int>(parse_count(parts[0], 1, "servers")),
                         static_cast<int>(parse_count(parts[1], 1, "workers")));
  }
  if (make_cases(o).empty()) throw ValueError("ps_bench: --only names no case");
  std::printf(
      "# ps_bench: servers and workers as separate processes on 127.0.0.1, ASP, bodies %s; "
      "each worker times its own rounds for >= %gs (>= %d rounds) after >= %gs of warm-up\n",
      o.socket_only ? "through the socket only" : "through shared memory", o.min_time, o.min_iters,
      o.warmup_time);
  std::printf(
      "# dense: size = table bytes, a round = push + pull of the whole table, rate = "
      "2*size/round in MB/s (1e6 bytes)\n");
  std::printf(
      "# sparse: size = distinct keys per batch (dim %lld, SGD), a round = push + pull of "
      "the batch, rate = keys/round in keys/s\n",
      static_cast<long long>(o.dim));
  if (o.roofline) {
    std::printf(
        "# tcp: the dense sizes over raw TCP, SIZE bytes to an echo process and back, blocking "
        "sockets, TCP_NODELAY: the loopback roofline of a dense round\n");
  }
  std::printf(
      "# round_ms and per_worker: median over workers of each worker's median round; "
      "aggregate: sum over workers of work done / time; min_ms, max_ms: the fastest and slowest "
      "round of any worker\n");
  std::printf("%-7s %7s %7s %10s %12s %14s %14s %7s %10s %10s\n", "#kind", "servers", "workers",
              "size", "round_ms", "per_worker", "aggregate", "rounds", "min_ms", "max_ms");
  std::fflush(stdout);
  if (o.roofline && wants(o, "dense")) {
    BenchOptions dense = o;
    dense.only = "dense";
    run_config(dense, 1, 1, true);
  }
  for (const auto& [servers, workers] : configs) run_config(o, servers, workers, false);
}

void add_options(CLI::App& cmd, BenchOptions* o) {
  cmd.description(
      "Push/pull speed of tessera's parameter server: servers and workers as separate processes "
      "of this binary on loopback (ASP), each worker timing its own round trips; one row per "
      "configuration and case.\n"
      "Example: ps_bench --configs 1x1 --sizes 1M,16M --keys 10k");
  cmd.add_option("--configs", o->configs, "SERVERSxWORKERS, a list")->capture_default_str();
  cmd.add_option("--sizes", o->sizes, "dense table sizes in bytes (K, M, G: KiB, MiB, GiB)")
      ->capture_default_str();
  cmd.add_option("--keys", o->keys, "distinct keys per sparse batch (k: 1000)")
      ->capture_default_str();
  cmd.add_option("--only", o->only, "dense, sparse or both")->capture_default_str();
  cmd.add_option("--dim", o->dim, "floats per sparse row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--min-time", o->min_time, "timed seconds per case and worker, at least")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--min-iters", o->min_iters, "timed rounds per case and worker, at least")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--warmup-time", o->warmup_time, "untimed seconds per case first, at least")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--warmup-iters", o->warmup_iters, "untimed rounds per case first, at least")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  // The launcher's flags for its children.
  cmd.add_flag("--socket-only", o->socket_only,
               "workers keep to the socket instead of sharing memory with the servers on this "
               "host (the transport ps-lite uses)");
  cmd.add_flag("--roofline", o->roofline,
               "first, the dense sizes as a raw TCP echo between two processes (rows 'tcp'): the "
               "bytes of a push + pull with no parameter server, the loopback roofline");
  cmd.add_option("--role", o->role)
      ->check(CLI::IsMember({"server", "worker", "echo", "raw"}))
      ->group("");
  cmd.add_option("--index", o->index)->group("");
  cmd.add_option("--servers", o->servers)->group("");
  cmd.add_option("--workers", o->workers)->group("");
  cmd.add_option("--connect", o->connect)->group("");
}

}  // namespace
}  // namespace tessera::bench

int main(int argc, char** argv) {
  using namespace tessera::bench;
  CLI::App app("ps_bench");
  BenchOptions options;
  add_options(app, &options);
  CLI11_PARSE(app, argc, argv);
  try {
    if (options.role == "server") {
      run_server(options);
    } else if (options.role == "worker") {
      BenchWorker(options).run();
    } else if (options.role == "echo") {
      run_echo();
    } else if (options.role == "raw") {
      run_raw_client(options);
    } else {
      run_launcher(options);
    }
  } catch (const std::exception& e) {
    std::fprintf(
        stderr, "ps_bench%s%s: %s\n", options.role.empty() ? "" : " ",
        options.role.empty() ? "" : (options.role + " " + std::to_string(options.index)).c_str(),
        e.what());
    return 1;
  }
  return 0;
}
