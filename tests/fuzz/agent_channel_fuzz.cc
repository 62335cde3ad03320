// The line an elastic agent sends a worker standing by (cli/agent_channel.h): any text is a place
// or nullopt, a place is one a job can have, and a place written back parses to the same one.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "cli/agent_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::cli::WorkerPlace;
  const std::string line(reinterpret_cast<const char*>(data), size);
  const std::optional<WorkerPlace> place = tessera::cli::parse_place(line);
  if (!place) return 0;
  if (place->rank < 0 || place->rank >= place->world_size || place->local_rank < 0 ||
      place->local_rank >= place->local_world_size || place->nnodes < 1 || place->attempt < 0) {
    __builtin_trap();
  }
  const std::optional<WorkerPlace> again =
      tessera::cli::parse_place(tessera::cli::place_line(*place));
  if (!again || again->rank != place->rank || again->world_size != place->world_size ||
      again->local_rank != place->local_rank ||
      again->local_world_size != place->local_world_size || again->nnodes != place->nnodes ||
      again->attempt != place->attempt) {
    __builtin_trap();
  }
  return 0;
}
