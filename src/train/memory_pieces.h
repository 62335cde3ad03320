#pragma once

// An elastic job's memory copy where no rank holds the whole training state (ZeRO, pipeline and
// tensor parallelism), kept as Gemini (SOSP 2023) keeps it: rank 0's encoding of the state
// (encode_checkpoint) is cut into one piece per rank, and rank r keeps piece r and its partner's,
// piece r + d (mod ranks), where d is the number of workers on rank 0's host when the job spans
// several hosts (so that the two holders of a piece are on different hosts), else 1. A copy is
// lost only when both holders of some piece die, and each rank holds two pieces of the state, not
// all of it.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/train/memory_copy.h"

namespace tessera::train {

// Collective: every rank's two pieces of `whole`, which rank 0 gives (the others' is ignored);
// `ranks_per_host` is each rank's host's worker count (rank 0's places the partners).
[[nodiscard]] StatePieces keep_pieces(comm::ProcessGroup& group, std::string whole,
                                      int ranks_per_host);

// What one rank of a new round holds of a memory copy: the pieces of step `step`'s copy cut in
// `count` (a copy kept whole is one piece, index 0).
struct PiecesHeld {
  int64_t step = -1;  // -1: nothing
  int count = 0;
  std::array<int, 2> index{-1, -1};
};

// The newest copy the ranks hold every piece of between them: its step (-1: none whole) and, for
// each piece, the rank that sends it (the lowest that holds it).
struct WholeCopy {
  int64_t step = -1;
  std::vector<int> senders;
};
[[nodiscard]] WholeCopy newest_whole_copy(const std::vector<PiecesHeld>& held);

// Collective over `group` (nullptr: this process alone): the encoding put back together, piece i
// from rank copy.senders[i], which holds it in `mine`.
[[nodiscard]] std::string join_pieces(comm::ProcessGroup* group, const StatePieces& mine,
                                      const WholeCopy& copy);

}  // namespace tessera::train
