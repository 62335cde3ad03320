// A parameter server's checkpoint (ServerState::restore), as a restarted server reads it from disk:
// a damaged, truncated or foreign file must be refused with FormatError, never read out of
// bounds or allocated for blindly. A file that restores checkpoints to one that restores to the
// same state (not always the same bytes: a worker it had as training is waited for again).
//
// Input: a mode byte, then bytes. Mode bit 0 clear: the bytes are the file. Set: they are the
// payload, wrapped in a valid header and checksum, so that the fuzzer reaches the tables' decoder
// instead of stopping at the CRC.
#include <cstddef>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <string_view>

#include "parallel/ps/server_state.h"
#include "tessera/core/crc32.h"
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

// The file around `payload`, as ServerState::checkpoint writes it.
std::string wrap(std::string_view payload) {
  std::string file = "TSPSSRVR";
  const auto append = [&](const auto& value) {
    file.append(reinterpret_cast<const char*>(&value), sizeof(value));
  };
  append(uint32_t{1});
  append(static_cast<uint64_t>(payload.size()));
  file += payload;
  append(tessera::crc32(std::as_bytes(std::span(payload.data(), payload.size()))));
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ServerState state(options(), tables(), {});
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string bytes = (data[0] & 1) ? wrap(input) : std::string(input);
  try {
    std::istringstream file(bytes);
    state.restore(file, "fuzz.ckpt");
  } catch (const tessera::FormatError&) {
    return 0;
  }
  const std::string again = state.checkpoint();
  ServerState second(options(), tables(), {});
  std::istringstream file(again);
  second.restore(file, "fuzz.ckpt (again)");
  if (second.checkpoint() != again) __builtin_trap();
  return 0;
}
