// ps-lite's side of bench/run_pslite.sh: the cases of bench/ps_bench.cc (1 server, 1 worker) run
// through ps-lite's KVWorker and KVServer, so that the two are measured on the same machine in
// the same run. Built only by run_pslite.sh, against a ps-lite build (it is not a dependency of
// tessera). The role (scheduler, server, worker) comes from ps-lite's DMLC_* variables.
//
//   dense:  one key whose value is SIZE bytes of floats; a round is a push of it then a pull.
//   sparse: KEYS distinct uniform keys of 16 floats each; a round is a push then a pull of them.
// PSLITE_BENCH_HANDLER=empty gives the server the handler of ps-lite's own benchmark (no store);
// otherwise it applies each push as SGD, as tessera's servers do. Prints "pslite KIND SIZE ROUNDS
// MEDIAN_S" per case.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/ps.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr float kLr = 0.01f;
constexpr int kDim = 16;

// With `store`, pushes update a store as SGD (value -= lr * gradient) as tessera's servers do, and
// pulls read it; without, the server answers a pull with zeros of the pushed size and keeps
// nothing (the ps-lite test program's handler: the transport alone).
class Handler {
 public:
  explicit Handler(bool store) : store_(store) {}

  void operator()(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
                  ps::KVServer<float>* server) {
    const size_t n = data.keys.size();
    ps::KVPairs<float> res;
    if (meta.push) {
      size_t at = 0;
      for (size_t i = 0; i < n; ++i) {
        const size_t len = data.lens.empty() ? data.vals.size() / n : data.lens[i];
        std::vector<float>& row = rows_[data.keys[i]];
        row.resize(len, 0.0f);
        if (store_) {
          const float* g = data.vals.data() + at;
          for (size_t k = 0; k < len; ++k) row[k] -= kLr * g[k];
        }
        at += len;
      }
    }
    if (meta.pull) {
      size_t total = 0;
      for (size_t i = 0; i < n; ++i) total += rows_[data.keys[i]].size();
      res.keys = data.keys;
      res.vals.resize(total);
      res.lens.resize(n);
      size_t at = 0;
      for (size_t i = 0; i < n; ++i) {
        const std::vector<float>& row = rows_[data.keys[i]];
        std::copy(row.begin(), row.end(), res.vals.data() + at);
        res.lens[i] = static_cast<int>(row.size());
        at += row.size();
      }
    }
    server->Response(meta, res);
  }

 private:
  bool store_;
  std::unordered_map<ps::Key, std::vector<float>> rows_;
};

// Median seconds of a round, after a warm-up, timed for at least 1 s and 5 rounds.
template <typename Round>
void time_case(const char* kind, long size, Round round) {
  for (int i = 0; i < 3; ++i) round();
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < 1.0) {
    const auto t = Clock::now();
    round();
    times.push_back(std::chrono::duration<double>(Clock::now() - t).count());
  }
  std::sort(times.begin(), times.end());
  std::printf("pslite %s %ld %zu %.9f\n", kind, size, times.size(), times[times.size() / 2]);
  std::fflush(stdout);
}

void run_worker() {
  ps::KVWorker<float> kv(0, 0);
  for (const long bytes : {4096L, 65536L, 1L << 20, 16L << 20, 64L << 20}) {
    const std::vector<ps::Key> keys{0};
    const std::vector<float> grad(static_cast<size_t>(bytes / 4), 1.0f);
    const std::vector<int> lens{static_cast<int>(grad.size())};
    std::vector<float> out;
    std::vector<int> out_lens;
    time_case("dense", bytes, [&] {
      kv.Wait(kv.Push(keys, grad, lens));
      kv.Wait(kv.Pull(keys, &out, &out_lens));
    });
  }
  std::mt19937_64 random(7);
  for (const long n : {1000L, 10000L, 100000L}) {
    std::vector<ps::Key> keys(static_cast<size_t>(n));
    for (auto& k : keys) k = 1 + random() % (ps::kMaxKey - 1);
    std::sort(keys.begin(), keys.end());  // ps-lite wants them sorted
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    const std::vector<float> grad(keys.size() * kDim, 1.0f);
    std::vector<float> out;
    time_case("sparse", n, [&] {
      kv.Wait(kv.Push(keys, grad));
      kv.Wait(kv.Pull(keys, &out));
    });
  }
}

}  // namespace

int main() {
  ps::Start(0);
  const char* mode = std::getenv("PSLITE_BENCH_HANDLER");
  Handler handler(mode == nullptr || std::string(mode) != "empty");
  ps::KVServer<float>* server = nullptr;
  if (ps::IsServer()) {
    server = new ps::KVServer<float>(0);
    server->set_request_handle([&handler](const ps::KVMeta& m, const ps::KVPairs<float>& d,
                                          ps::KVServer<float>* s) { handler(m, d, s); });
  }
  if (ps::IsWorker()) run_worker();
  ps::Finalize(0, true);
  delete server;
  return 0;
}
