#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "tessera/comm/init.h"
#include "tessera/comm/store.h"

namespace tessera::cli {

// A parameter-server job's hung workers, from the servers to the launchers through the job's
// store: a server that declared a worker lost for sending not even a heartbeat adds one to
// "ps/hung/<rank>", then to "ps/hung" (all ranks', so that a launcher's poll is one request); the
// launcher that started the rank sees the count grow and kills it, which is then handled as a
// crash (started again under --max-restarts, or the job goes on without it).

// For ServeOptions::on_hung: reports to the store `job` names; nullptr when it names none (an
// external launcher's job without one). Safe to call from several threads.
[[nodiscard]] std::function<void(int rank)> report_hung_to(const comm::JobEnv& job);

// The launcher's side, for the workers `ranks`. Not thread-safe.
class HungWorkers {
 public:
  HungWorkers(comm::Store& store, std::vector<int> ranks);

  // The ranks reported hung since the last call. Throws what the store throws.
  [[nodiscard]] std::vector<int> newly_hung();

 private:
  comm::Store& store_;
  std::int64_t reports_seen_ = 0;     // of all ranks
  std::map<int, std::int64_t> seen_;  // reports per rank handled so far
};

}  // namespace tessera::cli
