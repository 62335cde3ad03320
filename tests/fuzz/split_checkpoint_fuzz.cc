// The split strategies' checkpoint loaders, strategy "tensor" and ZeRO stage 3: a checkpoint's
// whole model and whole optimizer state, cut for this process. On one process (a group of one:
// each cut is the whole, yet every entry's name, shape and place is checked as on many). The
// first byte: bit 0 as in checkpoint_fuzz.cc (the whole file, or the payload of a file whose
// header and checksum are made valid here); bit 1 chooses the strategy.
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

#include "checkpoint_file.h"
#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/core/serialize.h"
#include "train/strategy.h"

using namespace tessera;

namespace {

// The model the seeds' checkpoints hold (tests/fuzz/corpus/split_checkpoint).
constexpr const char* kConfig = R"([model]
layers = [
  { type = "embedding", vocab = 16, dim = 8 },
  { type = "transformer_block", heads = 2, hidden = 16 },
  { type = "layernorm" },
  { type = "linear", tie = true },
]
[data]
train = "text:unused.txt"
seq_len = 8
batch_size = 4
[optimizer]
name = "adam"
lr = 0.01
[train]
loss = "next_token"
)";

struct Split {
  std::unique_ptr<train::Strategy> strategy;
  std::shared_ptr<nn::Sequential> model;
};

Split make(const std::string& strategy) {
  const train::Config config =
      train::parse_config(std::string(kConfig) + "[parallel]\n" + strategy, "split.toml", {});
  Split s;
  s.strategy = train::make_strategy(config, {});
  Generator init(1), dropout(2);
  s.model = train::build_model(config, {8}, init, dropout, nullptr, {}, 0, {}, {},
                               s.strategy->layer_split());
  s.strategy->attach(*s.model);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Split tensor = make("strategy = \"tensor\"\n");
  static Split zero3 = make("strategy = \"zero\"\nzero_stage = 3\n");
  if (size < 1) return 0;
  const std::string bytes = fuzz::checkpoint_bytes(data, size);
  Split& split = (data[0] & 2) != 0 ? zero3 : tensor;
  const fuzz::MemoryFile file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  try {
    const train::Checkpoint checkpoint = train::read_checkpoint(file.path());
    split.strategy->load_model_state(*split.model, checkpoint.section("model"), checkpoint.path);
    split.strategy->load(checkpoint);
  } catch (const Error&) {
  }
  return 0;
}
