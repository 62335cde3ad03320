#pragma once

#include <exception>
#include <string>
#include <thread>

#include "tessera/train/checkpoint.h"

namespace tessera::train {

// Writes a Trainer's checkpoints into a CheckpointDir, in the background when asked
// (train.async_checkpoint): save() takes the snapshot (every section already bytes in memory) and
// returns as soon as the previous write is done, one write in flight at most, so that training
// stalls only for the snapshot. A background write that failed is thrown by the next save() or by
// wait(); what was saved before stays (checkpoints are written to a temporary file and renamed).
class CheckpointWriter {
 public:
  CheckpointWriter(CheckpointDir& dir, bool background);
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // Waits for the write in flight; its error, if any, is dropped (wait() reports it).
  ~CheckpointWriter();

  // Writes `checkpoint` (now, or on a thread); returns the path it has or will have.
  std::string save(Checkpoint checkpoint);
  // Returns once nothing is being written; throws the error of a write that failed.
  void wait();

 private:
  CheckpointDir& dir_;
  const bool background_;
  std::thread writing_;
  std::exception_ptr failed_;
};

}  // namespace tessera::train
