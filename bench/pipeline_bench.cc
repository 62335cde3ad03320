// pipeline_bench: the idle "bubble" and the first stage's activation memory of parallel::Pipeline,
// run as the ranks of a job (`tessera launch --nproc K bench/pipeline_bench`,
// bench/run_model_parallel.sh).
//
// Every stage runs the same --layers blocks (Linear(width, width) + GELU), so the stages cost
// alike and the theory applies: with K stages and M micro-batches a stage idles (K-1)/(M+K-1) of a
// step under GPipe and 1F1B alike. Micro-batches have --rows rows whatever M (the batch grows with
// M), so GPipe's first stage holds M micro-batches' activations and 1F1B's at most K. For each
// schedule and M, every stage trains --warmup steps untimed and then --steps timed; a stage's idle
// fraction is its time not computing (waiting for neighbours, passing tensors) over its wall time.
// Rank 0 prints a row per case with every stage's idle fraction beside the theory.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tessera/autograd/functions.h"
#include "tessera/comm/init.h"
#include "tessera/core/error.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "tessera/parallel/pipeline.h"
#include "tessera/tensor/threads.h"

namespace tessera::bench {
namespace {

struct Options {
  int layers = 4;
  int64_t width = 1024;
  int64_t rows = 64;
  std::string micro_batches = "1,4,8,16";
  int steps = 4;
  int warmup = 2;
  int runs = 3;
  int threads = 1;
};

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

struct Case {
  double idle = 0, seconds = 0, compute = 0;
  size_t peak_bytes = 0;
};

Case run_case(nn::Module& stage, comm::ProcessGroup& group, const Options& o,
              parallel::PipelineSchedule schedule, int m) {
  parallel::Pipeline pipeline(stage, group, {.micro_batches = m, .schedule = schedule});
  Generator gen(1);
  const Tensor input = Tensor::randn({o.rows * m, o.width}, gen);
  const Tensor targets = Tensor::zeros({o.rows * m, o.width});
  auto loss = [](const autograd::Variable& out, const Tensor& /*targets*/) {
    return autograd::mean(autograd::mul(out, out));
  };
  Case c;
  // Gradients accumulate (no zero_grad), so that what a step adds to memory is its activations.
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    (void)pipeline.train_batch(input, targets, loss);
    if (step < o.warmup) continue;
    const auto& s = pipeline.last_step();
    c.idle += s.idle;
    c.seconds += s.seconds;
    c.compute += s.compute / (static_cast<double>(o.steps) * m);
    c.peak_bytes = std::max(c.peak_bytes, s.peak_activation_bytes);
  }
  return c;
}

void run(const Options& o) {
  set_num_threads(o.threads);
  const comm::InitOptions init_options;
  auto group = comm::init_from_env(init_options);
  const int k = group->size();
  Generator init(7 + static_cast<uint64_t>(group->rank()));
  nn::Sequential stage;
  for (int i = 0; i < o.layers; ++i) {
    stage.push_back(std::make_shared<nn::Linear>(o.width, o.width, init));
    stage.push_back(std::make_shared<nn::GELU>());
  }
  if (group->rank() == 0) {
    std::printf(
        "# %d stages x %d blocks of Linear(%lld, %lld) + GELU, %lld rows per micro-batch, "
        "%d thread(s) per stage; medians of %d runs of %d timed steps after %d\n",
        k, o.layers, static_cast<long long>(o.width), static_cast<long long>(o.width),
        static_cast<long long>(o.rows), o.threads, o.runs, o.steps, o.warmup);
    std::printf(
        "| K | schedule | M | theory (K-1)/(M+K-1) | idle per stage | largest diff | "
        "step ms | compute ms per micro-batch, per stage | stage 0 activations MiB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  }
  for (auto schedule :
       {parallel::PipelineSchedule::kGpipe, parallel::PipelineSchedule::kOneFOneB}) {
    for (int m : parse_list(o.micro_batches)) {
      // Medians over the runs of this stage's idle fraction and step time.
      std::vector<Case> runs;
      for (int r = 0; r < o.runs; ++r) runs.push_back(run_case(stage, *group, o, schedule, m));
      auto median = [&](auto key) {
        std::vector<double> v;
        for (const Case& c : runs) v.push_back(key(c));
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      std::vector<double> mine{median([](const Case& c) { return c.idle / c.seconds; }),
                               median([](const Case& c) { return c.seconds; }),
                               static_cast<double>(runs.front().peak_bytes),
                               median([](const Case& c) { return c.compute; })};
      std::vector<double> all(mine.size() * static_cast<size_t>(k));
      group->allgather(mine.data(), all.data(), mine.size(), comm::DataType::kFloat64)->wait();
      if (group->rank() != 0) continue;
      const double theory = static_cast<double>(k - 1) / (m + k - 1);
      std::string idle, compute;
      double worst = 0;
      for (int s = 0; s < k; ++s) {
        const double f = all[static_cast<size_t>(s) * mine.size()];
        idle += detail::concat(s ? " " : "", std::to_string(f).substr(0, 5));
        compute += detail::concat(s ? " " : "",
                                  std::to_string(1e3 * all[s * mine.size() + 3]).substr(0, 4));
        worst = std::max(worst, std::abs(f - theory));
      }
      std::printf("| %d | %s | %d | %.3f | %s | %.3f | %.1f | %s | %.1f |\n", k,
                  schedule == parallel::PipelineSchedule::kGpipe ? "gpipe" : "1f1b", m, theory,
                  idle.c_str(), worst, 1e3 * all[1] / o.steps, compute.c_str(), all[2] / (1 << 20));
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace tessera::bench

int main(int argc, char** argv) {
  tessera::bench::Options o;
  CLI::App app{
      "Idle fraction (bubble) of each pipeline stage and the first stage's activation memory, "
      "GPipe and 1F1B, for each number of micro-batches. Run as the ranks of a job: "
      "tessera launch --nproc K pipeline_bench [OPTIONS]"};
  app.add_option("--layers", o.layers, "Blocks (Linear + GELU) per stage")->capture_default_str();
  app.add_option("--width", o.width, "Width of every Linear")->capture_default_str();
  app.add_option("--rows", o.rows, "Rows of every micro-batch")->capture_default_str();
  app.add_option("--micro-batches", o.micro_batches, "Values of M, a list")->capture_default_str();
  app.add_option("--steps", o.steps, "Timed steps per case")->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--threads", o.threads, "Threads per stage")->capture_default_str();
  app.add_option("--runs", o.runs, "Runs of each case; medians are shown")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    tessera::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
