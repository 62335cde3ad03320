#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tessera/comm/store.h"

namespace tessera::comm {

// The rounds of an elastic job (torchrun's vocabulary): each host's agent joins a round, the
// round closes with the agents that came (between min_nodes and max_nodes), each gets its node
// rank and the ranks of its workers, and the workers run until some agent reports a failure or a
// new agent waits in the next round; then every agent still alive joins the next round.
//
// The protocol lives in a Store shared by the agents (keys under "elastic/"). A round closes when
// max_nodes have come; or when at least min_nodes have come and either every node of the
// previous round is back (a worker died, its host did not) or `last_call` has passed since this
// agent came (waiting for stragglers; a host that died never comes). An agent that comes after
// its round closed waits in the next one, which makes the running round end so that it is let in
// (unless the running round already has max_nodes: then it waits as a spare).
struct ElasticOptions {
  int min_nodes = 1;
  int max_nodes = 1;
  // After min_nodes have come, how long to wait for more (see above).
  std::chrono::milliseconds last_call{std::chrono::seconds(5)};
  // How long a round may take to reach min_nodes before join() gives up.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  // Rounds that may follow a failure; one more failure ends the job.
  int max_restarts = 0;
  // How often waits look at the store again.
  std::chrono::milliseconds poll{std::chrono::milliseconds(50)};
};

struct ElasticRound {
  std::int64_t number = 0;
  int node_rank = 0;
  int nnodes = 0;
  int first_rank = 0;  // the global rank of this agent's first worker
  int nproc = 0;       // this agent's workers
  int world_size = 0;
  int restarts = 0;  // rounds so far that followed a failure
};

// What ended a round, as the agents see it.
struct RoundEnd {
  enum class Kind { kFailed, kFatal, kJoin, kDone };
  Kind kind = Kind::kFailed;
  std::string reason;  // the first failure reported, or who waits
};

class ElasticRendezvous {
 public:
  // `store` is borrowed: it must outlive this object.
  ElasticRendezvous(Store& store, ElasticOptions options);

  // Joins the next round offering `nproc` workers: the newest round not yet closed when this agent
  // is new, else the one after the round it ran. Returns std::nullopt when the job is already
  // done. Throws TimeoutError when fewer than min_nodes came within `timeout`, Error when the job
  // failed more than max_restarts times or a fatal failure was reported.
  [[nodiscard]] std::optional<ElasticRound> join(int nproc);

  // Why `round` must end now, or std::nullopt while it may run on. Looks once.
  [[nodiscard]] std::optional<RoundEnd> should_end(const ElasticRound& round);

  // Reports that a worker of `round` failed; the first report names the round's cause. A fatal
  // failure (a bad config: running again cannot help) ends the job on every agent.
  void report_failure(const ElasticRound& round, const std::string& reason, bool fatal);

  // Reports that this agent's workers finished the job.
  void report_done();

  // Says this agent is gone from `round`; wait_for_others_to_leave returns once every node of it
  // has (or `timeout` passed): the agent that hosts the store keeps it for the others so long.
  void leave(const ElasticRound& round);
  void wait_for_others_to_leave(const ElasticRound& round, std::chrono::milliseconds timeout);

  // Ranks below kStepReporters report the steps they reach, so that the death of one (rank 0
  // included) leaves another's report of where the round got to.
  static constexpr int kStepReporters = 2;

  // The newest step a worker of round `number` reported (publish_step), or -1.
  [[nodiscard]] std::int64_t last_step(std::int64_t number);

  // Let the agents know where training is: `step` reached in round `number` by reporter
  // `reporter` (its rank, below kStepReporters), or the step round `number` resumed from (read
  // back with resumed_step).
  static void publish_step(Store& store, std::int64_t number, int reporter, std::int64_t step);
  static void publish_resumed(Store& store, std::int64_t number, std::int64_t step);
  [[nodiscard]] std::optional<std::int64_t> resumed_step(std::int64_t number);

 private:
  [[nodiscard]] std::optional<std::string> value(const std::string& key);
  [[nodiscard]] std::optional<int> try_close(std::int64_t k,
                                             std::chrono::steady_clock::time_point since);
  [[nodiscard]] ElasticRound membership(std::int64_t k, int index, int closed);

  Store& store_;
  ElasticOptions options_;
  std::int64_t next_ = -1;  // the round to join next; -1: not yet known
  bool member_of_previous_ = false;
};

}  // namespace tessera::comm
