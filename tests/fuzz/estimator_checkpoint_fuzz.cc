// An estimator's saved model (model.ckpt): the file, its config, meta and estimator sections. The
// first byte chooses how the rest is used, as in checkpoint_fuzz.cc: bit 0 clear, the whole file;
// set, the payload of a file whose header and checksum are made valid here.
#include <cstdint>
#include <string>

#include "checkpoint_file.h"
#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/saved_estimator.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes = fuzz::checkpoint_bytes(data, size);
  const fuzz::MemoryFile file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  try {
    (void)train::load_saved_estimator(train::read_checkpoint(file.path()));
  } catch (const Error&) {
  }
  return 0;
}
