// comm_bench: collective bandwidth of tessera's backends beside raw Gloo and raw MPI, measured in
// the same processes, in the same run, alternating op by op (nccl-tests' table). It lives in
// bench/, not in the `tessera` binary: users' programs need neither raw Gloo nor MPI linked in.
//
// The program is its own launcher: it hosts a TcpStoreServer on loopback and starts --nproc
// copies of this binary as workers, under `mpirun` when MPI is measured (all backends then share
// the processes mpirun starts) or by fork/exec otherwise. Workers find their role, rank, size and
// the store in TESSERA_BENCH_* variables; rank 0 prints the table.
#include <mpi.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <CLI/CLI.hpp>

#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/mpi/mpi_group.h"
#include "tessera/comm/shm/shm_group.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"

namespace tessera::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Environment of the workers this command starts (cli/ reads the environment; nothing else does).
constexpr const char* kRoleVar = "TESSERA_BENCH_ROLE";  // "fork" or "mpi"
constexpr const char* kRankVar = "TESSERA_BENCH_RANK";  // fork workers only
constexpr const char* kSizeVar = "TESSERA_BENCH_SIZE";
constexpr const char* kPortVar = "TESSERA_BENCH_STORE_PORT";
constexpr const char* kTokenVar = "TESSERA_BENCH_TOKEN";

constexpr auto kGroupTimeout = std::chrono::seconds(120);
// The timed iterations of each size are split into this many rounds over the variants.
constexpr int kRounds = 5;

struct BenchOptions {
  std::string backend = "all";
  std::string op = "allreduce";
  std::string sizes = "4K..64M";
  int iters = 0;  // 0: by size (more for small messages, whose times are noisier)
  int warmup = 3;
  int nproc = 2;
  std::string shm_slot = "256K";  // ShmOptions::slot_bytes
  bool rewrite = false;           // write the input before every timed operation, as backward does
};

// "4K", "16M", "1G", "4096": bytes (K, M, G are powers of 1024).
std::size_t parse_size(const std::string& text) {
  std::size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    throw CLI::ValidationError("--sizes", "'" + text + "' is not a size such as 4K, 16M or 4096");
  }
  const std::string suffix = text.substr(used);
  if (suffix == "K" || suffix == "k") return value << 10;
  if (suffix == "M" || suffix == "m") return value << 20;
  if (suffix == "G" || suffix == "g") return value << 30;
  if (suffix.empty() || suffix == "B") return value;
  throw CLI::ValidationError("--sizes", "'" + text + "': unknown suffix '" + suffix + "'");
}

// "4K..256M" (every power of two between), or a list "1M,4M,16M".
std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> sizes;
  if (const auto dots = text.find(".."); dots != std::string::npos) {
    const std::size_t low = parse_size(text.substr(0, dots));
    const std::size_t high = parse_size(text.substr(dots + 2));
    if (low == 0 || low > high) {
      throw CLI::ValidationError("--sizes", "'" + text + "': need 0 < first <= last");
    }
    for (std::size_t s = low; s <= high; s *= 2) sizes.push_back(s);
  } else {
    std::size_t start = 0;
    while (start <= text.size()) {
      const auto comma = text.find(',', start);
      const std::string part =
          text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!part.empty()) sizes.push_back(parse_size(part));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  for (std::size_t s : sizes) {
    if (s < sizeof(float)) throw CLI::ValidationError("--sizes", "sizes must be at least 4 bytes");
  }
  if (sizes.empty()) throw CLI::ValidationError("--sizes", "no sizes in '" + text + "'");
  return sizes;
}

// "all", one name, or a comma-separated list of names from `all`. Throws ValidationError naming
// `option` on an unknown name.
std::vector<std::string> split_list(const std::string& option, const std::string& value,
                                    const std::vector<std::string>& all) {
  if (value == "all") return all;
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    const auto comma = value.find(',', start);
    std::string name =
        value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      std::string known;
      for (const auto& a : all) known += (known.empty() ? "" : ", ") + a;
      throw CLI::ValidationError(option, "'" + name + "' is not one of " + known + " or all");
    }
    names.push_back(std::move(name));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

std::string human_size(std::size_t bytes) {
  char text[32];
  if (bytes >= (1u << 30) && bytes % (1u << 30) == 0) {
    std::snprintf(text, sizeof(text), "%zuG", bytes >> 30);
  } else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) {
    std::snprintf(text, sizeof(text), "%zuM", bytes >> 20);
  } else if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) {
    std::snprintf(text, sizeof(text), "%zuK", bytes >> 10);
  } else {
    std::snprintf(text, sizeof(text), "%zu", bytes);
  }
  return text;
}

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

int env_int(const char* name) {
  try {
    return std::stoi(env(name));
  } catch (const std::exception&) {
    throw Error(detail::concat("comm_bench worker: ", name, "='", env(name), "' is not a number"));
  }
}

// Gloo's rendezvous interface over the bench's store, for the raw Gloo context.
class GlooStore final : public ::gloo::rendezvous::Store {
 public:
  GlooStore(comm::Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + key, std::string_view(data.data(), data.size()));
  }
  std::vector<char> get(const std::string& key) override {
    const std::string value = store_.get(prefix_ + key);
    return {value.begin(), value.end()};
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, kGroupTimeout); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> full;
    for (const auto& k : keys) full.push_back(prefix_ + k);
    store_.wait(full, timeout);
  }

 private:
  comm::Store& store_;
  std::string prefix_;
};

// The buffers of one size: `size` bytes of float32 on the side where the op's size is counted
// (allreduce and broadcast: the buffer; allgather: the output; reduce_scatter: the input). Each
// variant has its own: a buffer another library just wrote sits in the other core's cache (the
// peer wrote it) and would slow down whichever variant runs next, unlike in real use.
struct Buffers {
  std::size_t count = 0;     // float32 elements of `size`
  std::size_t per_rank = 0;  // allgather input / reduce_scatter output elements
  std::size_t a_count = 0;
  std::size_t b_count = 0;
  std::shared_ptr<std::byte[]> a_memory;
  std::shared_ptr<std::byte[]> b_memory;

  [[nodiscard]] float* a() const { return reinterpret_cast<float*>(a_memory.get()); }
  [[nodiscard]] float* b() const { return reinterpret_cast<float*>(b_memory.get()); }
};

// One way of running the measured collective.
struct Variant {
  std::string label;  // "shm", "gloo(raw)", ...
  std::string peer;   // label of the raw library it is compared with, or empty
  std::function<void()> run;
  std::shared_ptr<Buffers> buffers;
};

using Allocate = std::function<std::shared_ptr<std::byte[]>(std::size_t bytes)>;

// 64-byte aligned, as a tensor's storage is: where a buffer starts within a cache line changes
// what a copy or reduction costs (a std::vector's large blocks start 16 bytes into a page, where
// the shared-memory backend measured 30% slower).
std::shared_ptr<std::byte[]> aligned_memory(std::size_t bytes) {
  constexpr std::align_val_t kAlignment{64};
  auto* p = static_cast<std::byte*>(::operator new(std::max<std::size_t>(bytes, 1), kAlignment));
  return std::shared_ptr<std::byte[]>(p, [](std::byte* q) { ::operator delete(q, kAlignment); });
}

// Buffers of `shape`'s sizes from `allocate`, zeroed.
std::shared_ptr<Buffers> make_buffers(const Buffers& shape, const Allocate& allocate) {
  auto buf = std::make_shared<Buffers>(shape);
  buf->a_memory = allocate(shape.a_count * sizeof(float));
  buf->b_memory = allocate(shape.b_count * sizeof(float));
  std::fill_n(buf->a(), shape.a_count, 0.0f);
  std::fill_n(buf->b(), shape.b_count, 0.0f);
  return buf;
}

// busbw / algbw (nccl-tests' convention).
double bus_factor(const std::string& op, int n) {
  if (op == "allreduce") return 2.0 * (n - 1) / n;
  if (op == "allgather" || op == "reduce_scatter") return static_cast<double>(n - 1) / n;
  return 1.0;
}

class Worker {
 public:
  Worker(const BenchOptions& options, bool under_mpi) : options_(options) {
    backends_ = split_list("--backend", options.backend, {"shm", "gloo", "mpi"});
    const bool want_mpi = std::find(backends_.begin(), backends_.end(), "mpi") != backends_.end();
    if (!under_mpi) std::erase(backends_, "mpi");
    comm::GroupOptions group_options;
    group_options.timeout = kGroupTimeout;
    if (under_mpi) {
      // Starts MPI; its world gives rank and size. Raw MPI runs on MPI_COMM_WORLD.
      group_options.name = "bench-mpi";
      mpi_ = comm::make_mpi_group(group_options);
      rank_ = mpi_->rank();
      size_ = mpi_->size();
      if (!want_mpi) mpi_.reset();
    } else {
      rank_ = env_int(kRankVar);
      size_ = env_int(kSizeVar);
    }
    comm::TcpStoreOptions store_options;
    store_options.port = env_int(kPortVar);
    store_options.token = env(kTokenVar);
    store_options.timeout = kGroupTimeout;
    store_ = std::make_shared<comm::TcpStore>(store_options);
    {
      comm::GroupOptions sync_options = group_options;
      sync_options.name = "bench-sync";
      comm::ShmOptions shm_options;
      shm_options.pool_bytes = 0;
      sync_ = comm::make_shm_group(store_, rank_, size_, sync_options, shm_options);
    }
    for (const std::string& backend : backends_) {
      if (backend == "shm") {
        group_options.name = "bench-shm";
        comm::ShmOptions shm_options;
        shm_options.slot_bytes = parse_size(options.shm_slot);
        shm_ = comm::make_shm_group(store_, rank_, size_, group_options, shm_options);
      } else if (backend == "gloo") {
        group_options.name = "bench-gloo";
        gloo_ = comm::make_gloo_group(store_, rank_, size_, group_options);
        // Raw Gloo: its own context and TCP device, as a program using Gloo directly has.
        ::gloo::transport::tcp::attr attr;
        attr.hostname = "127.0.0.1";
        auto device = ::gloo::transport::tcp::CreateDevice(attr);
        raw_gloo_ = std::make_shared<::gloo::rendezvous::Context>(rank_, size_);
        raw_gloo_->setTimeout(kGroupTimeout);
        GlooStore gloo_store(*store_, "bench/raw-gloo/");
        raw_gloo_->connectFullMesh(gloo_store, device);
      }
    }
    under_mpi_ = under_mpi;
  }

  void run() {
    const std::vector<std::size_t> sizes = parse_sizes(options_.sizes);
    const std::vector<std::string> ops =
        split_list("--op", options_.op, {"allreduce", "allgather", "reduce_scatter", "broadcast"});
    if (rank_ == 0) print_header();
    for (const std::string& op : ops) {
      for (std::size_t size : sizes) measure(op, size);
    }
    sync();
    for (auto* group : {&shm_, &gloo_, &mpi_, &sync_}) {
      if (*group) (*group)->shutdown();
    }
  }

 private:
  void sync() { sync_->barrier()->wait(); }

  void print_header() const {
    std::printf("# comm_bench: %d ranks (processes) on one host%s; float32, sum, in place%s\n",
                size_, under_mpi_ ? ", started by mpirun" : "",
                options_.rewrite ? "; inputs rewritten before every timed operation" : "");
    std::printf(
        "# time: median over iterations of the slowest rank's time; busbw = algbw x 2(n-1)/n "
        "(allreduce), (n-1)/n (allgather, reduce_scatter), 1 (broadcast)\n");
    std::printf("# %-14s %8s %11s  %-10s %10s %12s %12s  %s\n", "op", "size", "count", "backend",
                "time(us)", "algbw(GB/s)", "busbw(GB/s)", "busbw vs peer");
    std::fflush(stdout);
  }

  std::vector<Variant> variants(const std::string& op, const Buffers& shape) {
    std::vector<Variant> list;
    constexpr auto kType = comm::DataType::kFloat32;
    const bool have_raw_mpi = under_mpi_;
    const std::string fallback_peer = have_raw_mpi ? "mpi(raw)" : (raw_gloo_ ? "gloo(raw)" : "");
    auto tessera = [&](std::unique_ptr<comm::ProcessGroup>& group, const std::string& label,
                       const std::string& peer, bool plain_memory) {
      if (!group) return;
      comm::ProcessGroup* g = group.get();
      auto buf = plain_memory ? make_buffers(shape, aligned_memory)
                              : make_buffers(shape, [g](std::size_t n) { return g->allocate(n); });
      std::function<void()> fn;
      if (op == "allreduce") {
        fn = [g, buf] { g->allreduce(buf->a(), buf->count, kType, comm::ReduceOp::kSum)->wait(); };
      } else if (op == "allgather") {
        fn = [g, buf] { g->allgather(buf->a(), buf->b(), buf->per_rank, kType)->wait(); };
      } else if (op == "reduce_scatter") {
        fn = [g, buf] {
          g->reduce_scatter(buf->a(), buf->b(), buf->per_rank, kType, comm::ReduceOp::kSum)->wait();
        };
      } else {
        fn = [g, buf] { g->broadcast(buf->a(), buf->count, kType, 0)->wait(); };
      }
      list.push_back({label, peer, std::move(fn), buf});
    };
    // Buffers from the group's allocate(), as DDP's buckets are; shm(plain): any other memory.
    tessera(shm_, "shm", fallback_peer, false);
    tessera(shm_, "shm(plain)", fallback_peer, true);
    tessera(gloo_, "gloo", raw_gloo_ ? "gloo(raw)" : "", false);
    tessera(mpi_, "mpi", have_raw_mpi ? "mpi(raw)" : "", false);
    if (raw_gloo_) {
      auto context = raw_gloo_;
      auto buf = make_buffers(shape, aligned_memory);
      std::function<void()> fn;
      if (op == "allreduce") {
        fn = [this, context, buf] {
          ::gloo::AllreduceOptions opts(context);
          opts.setOutput(buf->a(), buf->count);
          opts.setReduceFunction(
              static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::sum<float>));
          opts.setTag(next_tag_++);
          ::gloo::allreduce(opts);
        };
      } else if (op == "allgather") {
        fn = [this, context, buf] {
          ::gloo::AllgatherOptions opts(context);
          opts.setInput(buf->a(), buf->per_rank);
          opts.setOutput(buf->b(), buf->per_rank * static_cast<std::size_t>(size_));
          opts.setTag(next_tag_++);
          ::gloo::allgather(opts);
        };
      } else if (op == "broadcast") {
        fn = [this, context, buf] {
          ::gloo::BroadcastOptions opts(context);
          opts.setOutput(buf->a(), buf->count);
          opts.setRoot(0);
          opts.setTag(next_tag_++);
          ::gloo::broadcast(opts);
        };
      }
      if (fn) list.push_back({"gloo(raw)", "", std::move(fn), buf});
    }
    if (have_raw_mpi) {
      auto buf = make_buffers(shape, aligned_memory);
      std::function<void()> fn;
      if (op == "allreduce") {
        fn = [buf] {
          MPI_Allreduce(MPI_IN_PLACE, buf->a(), static_cast<int>(buf->count), MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD);
        };
      } else if (op == "allgather") {
        fn = [buf] {
          MPI_Allgather(buf->a(), static_cast<int>(buf->per_rank), MPI_FLOAT, buf->b(),
                        static_cast<int>(buf->per_rank), MPI_FLOAT, MPI_COMM_WORLD);
        };
      } else if (op == "reduce_scatter") {
        fn = [buf] {
          MPI_Reduce_scatter_block(buf->a(), buf->b(), static_cast<int>(buf->per_rank), MPI_FLOAT,
                                   MPI_SUM, MPI_COMM_WORLD);
        };
      } else {
        fn = [buf] {
          MPI_Bcast(buf->a(), static_cast<int>(buf->count), MPI_FLOAT, 0, MPI_COMM_WORLD);
        };
      }
      list.push_back({"mpi(raw)", "", std::move(fn), buf});
    }
    return list;
  }

  int iterations(std::size_t bytes) const {
    if (options_.iters > 0) return options_.iters;
    if (bytes <= (std::size_t{64} << 10)) return 200;
    if (bytes <= (std::size_t{4} << 20)) return 50;
    return 20;
  }

  void measure(const std::string& op, std::size_t bytes) {
    Buffers buf;
    buf.count = bytes / sizeof(float);
    const auto n = static_cast<std::size_t>(size_);
    if (op == "allgather" || op == "reduce_scatter") {
      buf.per_rank = std::max<std::size_t>(buf.count / n, 1);
      buf.count = buf.per_rank * n;
    }
    const bool gathers = op == "allgather";
    buf.a_count = gathers ? buf.per_rank : buf.count;
    buf.b_count = gathers ? buf.count : buf.per_rank;
    std::vector<Variant> list = variants(op, buf);
    const int iters = iterations(bytes);
    for (int w = 0; w < options_.warmup; ++w) {
      for (auto& v : list) {
        sync();
        v.run();
      }
    }
    // times[v * iters + i]: variant v, iteration i. The iterations run in kRounds rounds; in each
    // round every variant (in rotating order) runs its share back to back after one untimed op:
    // each library is measured in its own steady state (a library that sleeps while it waits
    // lets the scheduler move threads and other processes chill the caches, which would tax
    // whichever variant ran next), while all of them share the machine's noise over time.
    std::vector<double> times(list.size() * static_cast<std::size_t>(iters));
    for (int round = 0; round < kRounds; ++round) {
      const int first = round * iters / kRounds;
      const int last = (round + 1) * iters / kRounds;
      for (std::size_t k = 0; k < list.size(); ++k) {
        const std::size_t v = (k + static_cast<std::size_t>(round)) % list.size();
        sync();
        list[v].run();
        for (int i = first; i < last; ++i) {
          if (options_.rewrite) {
            const Buffers& b = *list[v].buffers;
            std::fill_n(b.a(), b.a_count, static_cast<float>(i));
          }
          sync();
          const auto start = Clock::now();
          list[v].run();
          times[v * static_cast<std::size_t>(iters) + static_cast<std::size_t>(i)] =
              std::chrono::duration<double>(Clock::now() - start).count();
        }
      }
    }
    // The slowest rank's time per iteration.
    sync_->allreduce(times.data(), times.size(), comm::DataType::kFloat64, comm::ReduceOp::kMax)
        ->wait();
    if (rank_ != 0) return;
    const std::size_t size_bytes = buf.count * sizeof(float);
    std::vector<double> busbw(list.size());
    std::vector<double> medians(list.size());
    for (std::size_t v = 0; v < list.size(); ++v) {
      std::vector<double> t(times.begin() + static_cast<std::ptrdiff_t>(v * iters),
                            times.begin() + static_cast<std::ptrdiff_t>((v + 1) * iters));
      std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
      medians[v] = t[t.size() / 2];
      busbw[v] = static_cast<double>(size_bytes) / medians[v] / 1e9 * bus_factor(op, size_);
    }
    for (std::size_t v = 0; v < list.size(); ++v) {
      std::string versus;
      for (std::size_t p = 0; p < list.size(); ++p) {
        if (list[p].label == list[v].peer && busbw[p] > 0) {
          char text[64];
          std::snprintf(text, sizeof(text), "%.2fx %s", busbw[v] / busbw[p], list[p].label.c_str());
          versus = text;
        }
      }
      const std::string count = v == 0 ? std::to_string(buf.count) : std::string();
      std::printf("  %-14s %8s %11s  %-10s %10.1f %12.2f %12.2f  %s\n", v == 0 ? op.c_str() : "",
                  v == 0 ? human_size(size_bytes).c_str() : "", count.c_str(),
                  list[v].label.c_str(), medians[v] * 1e6,
                  static_cast<double>(size_bytes) / medians[v] / 1e9, busbw[v], versus.c_str());
    }
    std::fflush(stdout);
  }

  BenchOptions options_;
  std::vector<std::string> backends_;
  bool under_mpi_ = false;
  int rank_ = 0;
  int size_ = 1;
  std::shared_ptr<comm::Store> store_;
  // The barrier before every timed operation, on a segment none of the variants uses. With the
  // barrier on the Gloo group under test, its 2 MiB allreduce measured 0.91x raw Gloo (median of
  // 30 runs; raw Gloo against a second raw Gloo context 1.00x); with this group, 0.96x (15 runs).
  std::unique_ptr<comm::ProcessGroup> sync_;
  std::unique_ptr<comm::ProcessGroup> shm_;
  std::unique_ptr<comm::ProcessGroup> gloo_;
  std::unique_ptr<comm::ProcessGroup> mpi_;
  std::shared_ptr<::gloo::rendezvous::Context> raw_gloo_;
  std::uint32_t next_tag_ = 1;
};

std::optional<std::string> find_in_path(const std::string& program) {
  const std::string path = env("PATH");
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto colon = path.find(':', start);
    const std::string dir =
        path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return std::nullopt;
}

// Starts `argv` with `extra_env` added to this process's environment; returns its pid.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_strings(extra_env);
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> env_ptrs;
  for (auto& s : env_strings) env_ptrs.push_back(s.data());
  env_ptrs.push_back(nullptr);
  std::vector<std::string> args(argv);
  std::vector<char*> arg_ptrs;
  for (auto& s : args) arg_ptrs.push_back(s.data());
  arg_ptrs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(detail::concat("comm_bench: fork: ", std::strerror(errno)));
  if (pid == 0) {
    ::execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    std::fprintf(stderr, "comm_bench: cannot run %s: %s\n", arg_ptrs[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return detail::concat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return detail::concat("was killed by signal ", WTERMSIG(status));
  return detail::concat("ended with status ", status);
}

// Waits for every child; after the first failure the others get SIGTERM. Throws Error naming the
// first that failed.
void wait_all(std::vector<pid_t> pids, const std::vector<std::string>& names) {
  std::string failure;
  std::vector<bool> done(pids.size(), false);
  for (std::size_t left = pids.size(); left > 0; --left) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        ++left;
        continue;
      }
      break;
    }
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) {
      ++left;
      continue;
    }
    const auto i = static_cast<std::size_t>(it - pids.begin());
    done[i] = true;
    if (status != 0 && failure.empty()) {
      failure = names[i] + " " + describe_status(status);
      for (std::size_t j = 0; j < pids.size(); ++j) {
        if (!done[j]) ::kill(pids[j], SIGTERM);
      }
    }
  }
  if (!failure.empty()) throw Error("comm_bench: " + failure);
}

void run_driver(const BenchOptions& options) {
  if (options.nproc < 1) throw CLI::ValidationError("--nproc", "must be at least 1");
  // Reject bad lists before starting anything.
  (void)parse_sizes(options.sizes);
  (void)split_list("--op", options.op, {"allreduce", "allgather", "reduce_scatter", "broadcast"});
  std::vector<std::string> backends =
      split_list("--backend", options.backend, {"shm", "gloo", "mpi"});
  const bool want_mpi = std::find(backends.begin(), backends.end(), "mpi") != backends.end();
  const std::optional<std::string> mpirun = want_mpi ? find_in_path("mpirun") : std::nullopt;
  if (want_mpi && !mpirun) {
    if (options.backend == "mpi") throw Error("comm_bench: --backend mpi needs mpirun on the PATH");
    std::printf("# mpirun not found on the PATH: MPI and raw MPI are not measured\n");
  }
  comm::TcpStoreServerOptions server_options;
  server_options.token = comm::make_job_token();
  comm::TcpStoreServer server(server_options);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {self,
                                   "--backend",
                                   options.backend,
                                   "--op",
                                   options.op,
                                   "--sizes",
                                   options.sizes,
                                   "--iters",
                                   std::to_string(options.iters),
                                   "--warmup",
                                   std::to_string(options.warmup),
                                   "--nproc",
                                   std::to_string(options.nproc),
                                   "--shm-slot",
                                   options.shm_slot};
  if (options.rewrite) args.emplace_back("--rewrite");
  const std::vector<std::string> common_env = {
      detail::concat(kPortVar, "=", server.port()),
      detail::concat(kTokenVar, "=", server_options.token)};
  std::fflush(stdout);
  if (mpirun) {
    std::vector<std::string> argv = {
        *mpirun,     "-np", std::to_string(options.nproc), "--oversubscribe", "--allow-run-as-root",
        "--bind-to", "none"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> extra = common_env;
    extra.push_back(detail::concat(kRoleVar, "=mpi"));
    wait_all({spawn(argv, extra)}, {"mpirun"});
    return;
  }
  std::vector<pid_t> pids;
  std::vector<std::string> names;
  for (int r = 0; r < options.nproc; ++r) {
    std::vector<std::string> extra = common_env;
    extra.push_back(detail::concat(kRoleVar, "=fork"));
    extra.push_back(detail::concat(kRankVar, "=", r));
    extra.push_back(detail::concat(kSizeVar, "=", options.nproc));
    pids.push_back(spawn(args, extra));
    names.push_back(detail::concat("worker ", r));
  }
  wait_all(pids, names);
}

void add_options(CLI::App& cmd, BenchOptions* options) {
  cmd.description(
      "Collective bandwidth on this host, nccl-tests style: tessera's shared-memory, Gloo and MPI "
      "backends beside raw Gloo and raw MPI, in the same processes, taking turns in rounds; "
      "every timed operation starts after a barrier on a shared-memory group none of them uses.\n"
      "Runs --nproc workers of this binary (under mpirun when MPI is measured); rank 0 prints "
      "the table.\n"
      "Example: comm_bench --nproc 2 --op allreduce --sizes 1M..16M");
  cmd.add_option("--backend", options->backend, "shm, gloo, mpi, a list (shm,mpi) or all")
      ->capture_default_str();
  cmd.add_option("--op", options->op,
                 "allreduce, allgather, reduce_scatter, broadcast, a list or all")
      ->capture_default_str();
  cmd.add_option("--sizes", options->sizes,
                 "FIRST..LAST (powers of two between) or a list 1M,4M; K/M/G are KiB/MiB/GiB")
      ->capture_default_str();
  cmd.add_option("--iters", options->iters,
                 "Timed iterations per size (0: 200 up to 64K, 50 up to 4M, 20 above)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--warmup", options->warmup, "Untimed iterations per size first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--nproc", options->nproc, "Ranks (processes) on this host")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--shm-slot", options->shm_slot,
                 "Slot size of the shared-memory backend (ShmOptions::slot_bytes)")
      ->capture_default_str();
  cmd.add_flag("--rewrite", options->rewrite,
               "Each rank writes its input buffer before every timed operation (untimed), as "
               "backward writes a gradient bucket; without it the buffers stay where the last "
               "operation left them, as in nccl-tests");
}

}  // namespace
}  // namespace tessera::bench

int main(int argc, char** argv) {
  using namespace tessera::bench;
  CLI::App app("comm_bench");
  BenchOptions options;
  add_options(app, &options);
  CLI11_PARSE(app, argc, argv);
  try {
    const std::string role = env(kRoleVar);
    if (role.empty()) {
      run_driver(options);
    } else {
      Worker(options, role == "mpi").run();
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comm_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
