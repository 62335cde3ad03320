#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tessera::train {

// A checkpoint: named byte sections ("model", "optimizer", "sampler", "rng", ...) and the step it
// was taken at. On disk: magic, version, payload length, payload, CRC-32 of the payload.
struct Checkpoint {
  int64_t step = 0;
  std::map<std::string, std::string> sections;

  // The section's bytes; throws FormatError naming the file when it is missing.
  const std::string& section(const std::string& name) const;
  std::string path;  // where it was read from (set by read_checkpoint)
};

// Writes atomically: a temporary file in the same directory, fsync, rename over `path`, fsync of
// the directory. A crash at any point leaves either the old file or the complete new one.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads and verifies a checkpoint; a wrong magic, a truncated file or a checksum mismatch throws
// FormatError naming the file and what is wrong.
[[nodiscard]] Checkpoint read_checkpoint(const std::string& path);

// The bytes write_checkpoint puts in a file, and back (verified as read_checkpoint does; `path`
// names the checkpoint in errors and becomes its path): for sending a checkpoint to other ranks.
[[nodiscard]] std::string encode_checkpoint(const Checkpoint& checkpoint);
[[nodiscard]] Checkpoint decode_checkpoint(const std::string& bytes, const std::string& path);

// The checkpoints of one run: <dir>/step-<step>.ckpt, the newest `keep` kept.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int64_t keep);
  // Writes the checkpoint for its step, then deletes all but the newest `keep`. Returns its path.
  std::string save(const Checkpoint& checkpoint);
  // Where save() puts the checkpoint of `step`.
  [[nodiscard]] std::string path_for(int64_t step) const;
  // Checkpoint files present, oldest first.
  [[nodiscard]] std::vector<std::string> list() const;
  // The step of the newest checkpoint file present (verified or not), -1 when there is none.
  [[nodiscard]] int64_t newest_step() const;
  // The newest checkpoint that reads and verifies; each newer one that failed is skipped and its
  // error appended to `skipped` (so the caller can say why). nullopt when none is valid.
  [[nodiscard]] std::optional<Checkpoint> latest_valid(std::vector<std::string>* skipped) const;
  const std::string& dir() const { return dir_; }

 private:
  // (step, path) of each checkpoint file, oldest first.
  [[nodiscard]] std::vector<std::pair<int64_t, std::string>> list_by_step() const;
  std::string dir_;
  int64_t keep_;
};

}  // namespace tessera::train
