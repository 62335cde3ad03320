// A parameter server's checkpoint (ServerState::restore), as a restarted server reads it from disk:
// a damaged, truncated or foreign file must be refused with FormatError, never read out of
// bounds or allocated for blindly. A file that restores must checkpoint again to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "parallel/ps/server_state.h"
#include "tessera/core/error.h"

namespace {

using namespace tessera::parallel::ps;

std::vector<TableSpec> tables() {
  using Kind = OptimizerSpec::Kind;
  return {
      {.id = 1, .kind = TableSpec::Kind::kDense, .size = 6, .optimizer = {.momentum = 0.9f}},
      {.id = 2, .kind = TableSpec::Kind::kSparse, .dim = 3, .optimizer = {.kind = Kind::kAdagrad}},
  };
}

ServerOptions options() {
  return {.index = 0, .servers = 2, .workers = 2, .consistency = Consistency::kAsp, .token = "t"};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ServerState state(options(), tables(), {});
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    state.restore(bytes, "fuzz.ckpt");
  } catch (const tessera::FormatError&) {
    return 0;
  }
  if (state.checkpoint() != bytes) __builtin_trap();
  return 0;
}
