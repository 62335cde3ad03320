// The checkpoint loader: the file, the model rebuilt from its config and meta sections, the
// weights, the optimizer state and the generator state. The first byte chooses how the rest is
// used: bit 0 clear, as the whole file; bit 0 set, as the payload of a file whose header and
// checksum are made valid here, so that mutations reach the sections instead of stopping at
// the checksum.
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

#include "checkpoint_file.h"
#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/core/serialize.h"
#include "tessera/optim/adam.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/saved_model.h"

using namespace tessera;

namespace {

void load_sections(const train::Checkpoint& checkpoint) {
  train::SavedModel saved = train::load_saved_model(checkpoint, /*memory_limit=*/64 << 20);
  optim::Adam adam(saved.model->parameters(), {});
  std::istringstream state(checkpoint.section("optimizer"));
  BinaryReader reader(state, "optimizer");
  adam.load_state(reader);
  Generator gen(0);
  gen.set_state(checkpoint.section("rng"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes = fuzz::checkpoint_bytes(data, size);
  const fuzz::MemoryFile file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  try {
    load_sections(train::read_checkpoint(file.path()));
  } catch (const Error&) {
  }
  return 0;
}
