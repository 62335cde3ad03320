#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "tessera/data/dataset.h"
#include "tessera/train/checkpoint.h"

namespace tessera::train {

// A rank's share of a memory copy that no rank keeps whole (src/train/memory_pieces.h): the
// state's encoding is cut into `count` pieces, and the rank keeps two of them.
struct StatePieces {
  int count = 0;  // 0: none kept
  std::array<int, 2> index{-1, -1};
  std::array<std::string, 2> bytes;
};

// What a worker of an elastic job keeps across the groups it trains in (TrainerOptions::memory):
// the newest copy of the training state, refreshed every train.memory_copy_every steps, so that
// after a failure the survivors' copies let the new group go on without reading storage; and the
// data sets, opened once. Where every rank holds the whole state (DDP) each keeps its own, whole,
// and any one survivor suffices; else (ZeRO, pipeline, tensor parallelism) rank 0 puts the state
// together and every rank keeps its piece and a partner's, so that the copy survives unless both
// holders of some piece die. After a resume every rank holds the copy whole until the next refresh.
struct MemoryCopy {
  int64_t step = -1;       // the step of the copy; -1: none yet
  Checkpoint state;        // the copy, where this rank keeps it whole
  StatePieces pieces;      // else this rank's pieces of it
  int ranks_per_host = 1;  // this round's workers on this rank's host (rank 0's place the partners)
  std::shared_ptr<data::Dataset> train_data;
  std::shared_ptr<data::Dataset> test_data;
};

}  // namespace tessera::train
