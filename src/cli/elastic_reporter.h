#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "tessera/comm/init.h"
#include "tessera/comm/tcp_store.h"

namespace tessera::cli {

// Under an elastic agent (TESSERA_ELASTIC), the first ranks (kStepReporters: one may be the one
// that dies) tell the agents through the job's store the step their round resumed from and the
// step they have reached, from which the agents log the steps a failure cost. The store is written
// from a thread of its own (a step never waits on it), at most every kEvery and once more when the
// reporter is destroyed (a worker failing on a peer's death says where it stopped). A store that
// went away (its host ended) does not stop training.
class ElasticReporter {
 public:
  explicit ElasticReporter(const comm::JobEnv& job);
  ElasticReporter(const ElasticReporter&) = delete;
  ElasticReporter& operator=(const ElasticReporter&) = delete;
  ~ElasticReporter();

  // For TrainerOptions::on_step; nullptr when this process reports nothing.
  [[nodiscard]] std::function<void(int64_t)> on_step();

 private:
  void publish_loop();

  static constexpr std::chrono::milliseconds kEvery{20};
  std::int64_t attempt_ = 0;
  int rank_ = 0;
  std::unique_ptr<comm::TcpStore> store_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::int64_t first_ = -1;  // the step the round started from, once known
  std::int64_t step_ = -1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tessera::cli
