// A model that does not fit: under a tensor memory cap (train.memory_cap_mb), a transformer whose
// parameters and gradients alone exceed the cap fails on one process with an error naming the cap
// and the layer that broke it, or, when the model fits but training does not, naming the cap and
// the allocation; cut into two pipeline stages, split over two processes by tensor parallelism, or
// fully sharded over two (ZeRO-3; a deeper model), real processes each under the cap, it trains.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

// `blocks` transformer blocks of width `width` under a cap of `cap_mb`.
fs::path write_job(const TrainingJob& job, int blocks, int width, int cap_mb) {
  {
    std::ofstream text(job.dir() / "text.txt");
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to"};
    for (int i = 0; i < 3000; ++i) text << words[(i * 7 + i / 3) % 10] << ' ';
  }
  const std::string text = (job.dir() / "text.txt").string();
  const fs::path config = job.dir() / "cap.toml";
  std::ofstream out(config);
  out << "[model]\nlayers = [\n  { type = \"embedding\", vocab = 32, dim = " << width << " },\n";
  for (int b = 0; b < blocks; ++b) out << "  { type = \"transformer_block\", heads = 4 },\n";
  out << R"(  { type = "layernorm" },
  { type = "linear", tie = true },
]
[data]
train = "text:)"
      << text << R"(:0-0.9"
test = "text:)"
      << text << R"(:0.9-1"
seq_len = 16
batch_size = 8
[optimizer]
name = "sgd"
lr = 0.05
[train]
loss = "next_token"
epochs = 1
max_steps = 8
log_every = 4
memory_cap_mb = )"
      << cap_mb << R"(
threads = 1
run_dir = ")"
      << (job.dir() / "run").string() << R"("
)";
  return config;
}

// Two blocks of width 256: 12 MiB of parameters and gradients, 6 MiB a stage, under 10 MiB.
int train(const TrainingJob& job, const std::string& name, std::vector<std::string> args,
          int blocks = 2, int width = 256, int cap_mb = 10) {
  args.insert(args.begin(),
              {tessera_binary(), "train", write_job(job, blocks, width, cap_mb).string()});
  Process p(args, {}, job.dir() / name);
  return p.wait(90s).value_or(-1);
}

TEST(MemoryCap, AModelOverTheCapFailsOnOneProcessAndTrainsSplitInTwo) {
  TrainingJob job("memory_cap");
  EXPECT_NE(train(job, "one", {}), 0);
  const std::string one = read_file(job.dir() / "one.err");
  EXPECT_NE(one.find("model.layers[2]"), std::string::npos) << one;
  EXPECT_NE(one.find("10.0 MiB of this process's cap (train.memory_cap_mb"), std::string::npos)
      << one;

  // With momentum the model fits, but its optimizer state does not.
  EXPECT_NE(train(job, "momentum",
                  {"--set", "train.memory_cap_mb=17", "--set", "optimizer.momentum=0.9"}),
            0);
  const std::string momentum = read_file(job.dir() / "momentum.err");
  EXPECT_NE(momentum.find("out of memory"), std::string::npos) << momentum;
  EXPECT_NE(momentum.find("over its cap of 17.0 MiB (train.memory_cap_mb in"), std::string::npos)
      << momentum;

  for (const std::string strategy : {"pipeline", "tensor"}) {
    const int two =
        train(job, strategy, {"--nproc", "2", "--set", "parallel.strategy=\"" + strategy + "\""});
    EXPECT_EQ(two, 0) << read_file(job.dir() / (strategy + ".err"));
    const std::string out =
        read_file(job.dir() / (strategy + ".err")) + read_file(job.dir() / (strategy + ".out"));
    EXPECT_NE(out.find("trained 8 steps"), std::string::npos) << out;
  }
}

// ZeRO-3 holds 1/N of the parameters and gradients but gathers two layers at a time (the one
// computing and the next), with one layer's whole gradient: it pays off with many layers. Twelve
// blocks of width 128: 18 MiB of parameters and gradients and 12 MiB of activations need more than
// a cap of 20 MiB on one process; fully sharded over two, each holds 9 MiB of them, half the
// activations and a few layers gathered.
TEST(MemoryCap, AModelOverTheCapTrainsFullySharded) {
  TrainingJob job("memory_cap_zero3");
  EXPECT_NE(train(job, "one", {}, 12, 128, 20), 0);
  const std::string one = read_file(job.dir() / "one.err");
  EXPECT_NE(one.find("20.0 MiB of this process's cap (train.memory_cap_mb"), std::string::npos)
      << one;
  const int two = train(
      job, "zero3",
      {"--nproc", "2", "--set", "parallel.strategy=\"zero\"", "--set", "parallel.zero_stage=3"}, 12,
      128, 20);
  EXPECT_EQ(two, 0) << read_file(job.dir() / "zero3.err");
  const std::string out = read_file(job.dir() / "zero3.err") + read_file(job.dir() / "zero3.out");
  EXPECT_NE(out.find("trained 8 steps"), std::string::npos) << out;
}

}  // namespace
}  // namespace tessera::e2e
