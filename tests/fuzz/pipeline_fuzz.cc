// What a pipeline stage decodes from outside: a neighbour's tensor header
// (parallel/pipeline_wire.h) and, on resume, the whole model's state out of which it takes its own
// layers' entries (train/stage_state.h), and the stages' states rank 0 puts together for a
// checkpoint.
//
// Input: a mode byte, then the bytes. Mode 0: a tensor header (8 int64, zero-padded). Mode 1: a
// model state for a stage of two linear layers, taken apart and loaded. Mode 2: two stage states
// put together (the bytes cut in half), then taken apart again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "parallel/pipeline_wire.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/sequential.h"
#include "train/section_bytes.h"
#include "train/stage_state.h"

using namespace tessera;

namespace {

nn::Sequential& stage() {
  static nn::Sequential* s = [] {
    Generator gen(1);
    auto* m = new nn::Sequential();
    m->push_back(std::make_shared<nn::Linear>(3, 2, gen), "4");
    m->push_back(std::make_shared<nn::Linear>(2, 2, gen), "5");
    return m;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 3;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (mode == 0) {
      parallel::TensorHeader h{};
      std::memcpy(h.data(), bytes.data(), std::min(bytes.size(), sizeof(h)));
      const parallel::TensorSpec t = parallel::decode_header(h, 1, "fuzz");
      if (static_cast<int64_t>(t.shape.size()) != h[1]) __builtin_trap();
    } else if (mode == 1) {
      const std::string mine = train::stage_state(bytes, stage(), "fuzz");
      train::from_bytes(mine, "fuzz", [](BinaryReader& r) { stage().load_state(r); });
    } else {
      const std::string whole = train::merge_stage_states(
          {bytes.substr(0, bytes.size() / 2), bytes.substr(bytes.size() / 2)}, "fuzz");
      (void)train::stage_state(whole, stage(), "fuzz");
    }
  } catch (const Error&) {
  } catch (const std::bad_alloc&) {
  }
  return 0;
}
