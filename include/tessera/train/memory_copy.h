#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tessera/data/dataset.h"
#include "tessera/train/checkpoint.h"

namespace tessera::train {

// What a worker of an elastic job keeps across the groups it trains in (TrainerOptions::memory):
// the newest copy of the whole training state, as a checkpoint holds it, refreshed every
// train.memory_copy_every steps on every rank (each rank's own where every rank holds the whole
// state, as DDP's do; else rank 0 puts it together and sends it to the others), so that after a
// failure any one survivor's copy lets the new group go on without reading storage; and the data
// sets, opened once.
struct MemoryCopy {
  int64_t step = -1;  // the step of `state`; -1: none yet
  Checkpoint state;
  std::shared_ptr<data::Dataset> train_data;
  std::shared_ptr<data::Dataset> test_data;
};

}  // namespace tessera::train
