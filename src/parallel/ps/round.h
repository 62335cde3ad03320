#pragma once

#include <cstdint>
#include <string>
#include <vector>

// A BSP round of one table: every worker pushes its gradient of step `version` once; the round
// completes when all have, and only then may anyone pull step version + 1.
namespace tessera::parallel::ps {

class Round {
 public:
  explicit Round(int workers) : pushed_(static_cast<size_t>(workers), false) {}

  [[nodiscard]] int64_t version() const { return version_; }
  // Counts worker's push of step `clock`; true when it completes the round. Throws
  // ProtocolError for a push of another step or a second push of the same step.
  bool add(uint32_t worker, int64_t clock);
  void finish();
  // Starts over at step `version` with no push counted (a server started from a checkpoint).
  void start_at(int64_t version);
  // The workers the round still waits for, as "2, 3".
  [[nodiscard]] std::string missing() const;
  [[nodiscard]] int workers() const { return static_cast<int>(pushed_.size()); }

 private:
  int64_t version_ = 0;
  int count_ = 0;
  std::vector<bool> pushed_;
};

}  // namespace tessera::parallel::ps
