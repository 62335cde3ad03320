// bench/comm_bench: it runs its workers, measures every variant and prints one row for each.
// No figure is checked against another (speed belongs to bench/), only that each was measured.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

// The time column (us) of the row for `backend`, or -1 when there is none. (Not busbw: at 4 KiB
// on a loaded machine it prints as 0.00.)
double time_of(const std::string& table, const std::string& backend) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    // "allreduce 4K 1024 shm time algbw busbw [ratio peer]" or, on later rows of a size,
    // "gloo time algbw busbw [ratio peer]".
    for (std::size_t i = 0; i + 3 < f.size(); ++i) {
      if (f[i] == backend) return std::stod(f[i + 1]);
    }
  }
  return -1;
}

TEST(CommBench, MeasuresEveryBackendBesideRawGloo) {
  const fs::path dir = fs::path(::testing::TempDir()) / "bench_comm";
  fs::create_directories(dir);
  Process bench({COMM_BENCH_BINARY, "--nproc", "2", "--backend", "shm,gloo", "--op", "allreduce",
                 "--sizes", "4K", "--iters", "5", "--warmup", "1", "--rewrite"},
                {}, dir / "bench");
  auto code = bench.wait(60s);
  ASSERT_TRUE(code.has_value()) << "comm_bench did not finish within 60 s:\n" << bench.err();
  ASSERT_EQ(*code, 0) << bench.err();
  const std::string out = bench.out();
  for (const char* backend : {"shm", "shm(plain)", "gloo", "gloo(raw)"}) {
    EXPECT_GT(time_of(out, backend), 0) << backend << " not measured:\n" << out;
  }
  EXPECT_NE(out.find("x gloo(raw)"), std::string::npos) << "no ratio against raw Gloo:\n" << out;
  EXPECT_NE(out.find("inputs rewritten before every timed operation"), std::string::npos) << out;
}

TEST(CommBench, RejectsAnUnknownBackendBeforeStartingWorkers) {
  const fs::path dir = fs::path(::testing::TempDir()) / "bench_comm_bad";
  fs::create_directories(dir);
  Process bench({COMM_BENCH_BINARY, "--nproc", "2", "--backend", "nccl"}, {}, dir / "bench");
  auto code = bench.wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_NE(bench.err().find("nccl"), std::string::npos) << bench.err();
}

}  // namespace
}  // namespace tessera::e2e
