#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tessera::train {

// Shows training progress on a stream: on a terminal, one line redrawn in place (bar, rate, ETA,
// loss); otherwise a plain line every `every` steps, so logs stay readable. Not thread-safe.
class Progress {
 public:
  Progress(std::FILE* out, int64_t every);
  // Starts an epoch of `total` steps (0: unknown).
  void start_epoch(int64_t epoch, int64_t epochs, int64_t total);
  void update(int64_t done, double loss, double samples_per_s);
  // Ends the epoch's line and prints `summary` (evaluation results) under it.
  void end_epoch(const std::string& summary);

 private:
  std::FILE* out_;
  bool tty_;
  int64_t every_;
  int64_t epoch_ = 0;
  int64_t epochs_ = 0;
  int64_t total_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace tessera::train
