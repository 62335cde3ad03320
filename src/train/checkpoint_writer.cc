#include "checkpoint_writer.h"

#include <utility>

namespace tessera::train {

CheckpointWriter::CheckpointWriter(CheckpointDir& dir, bool background)
    : dir_(dir), background_(background) {}

CheckpointWriter::~CheckpointWriter() {
  if (writing_.joinable()) writing_.join();
}

std::string CheckpointWriter::save(Checkpoint checkpoint) {
  wait();
  if (!background_) return dir_.save(checkpoint);
  std::string path = dir_.path_for(checkpoint.step);
  writing_ = std::thread([this, c = std::move(checkpoint)] {
    try {
      (void)dir_.save(c);
    } catch (...) {
      failed_ = std::current_exception();
    }
  });
  return path;
}

void CheckpointWriter::wait() {
  if (writing_.joinable()) writing_.join();
  if (failed_) std::rethrow_exception(std::exchange(failed_, nullptr));
}

}  // namespace tessera::train
