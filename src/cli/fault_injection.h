#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tessera::cli {

// Faults a worker injects into itself, for the fault-tolerance tests and `tessera chaos`: from
// TESSERA_FAULTS, a comma-separated list of KIND:rank=R:step=S[:attempt=A][:ms=M] (attempt 0
// unless given; "attempt=any" in every one), KIND one of
//   sigkill  the worker kills itself (a crash),
//   host     it kills its launcher, then itself (its host is gone),
//   sigstop  it stops itself (a hang: its peers' collectives time out),
//   exit     it exits with code 1 (an error),
//   slow     it sleeps M milliseconds (a straggler),
//   corrupt  it flips a byte in the middle of the newest checkpoint, then kills itself,
//   truncate it cuts the newest checkpoint to half its size, then kills itself,
// each done by rank R of round A of the job once it has finished step S.
struct Fault {
  enum class Kind { kSigkill, kHost, kSigstop, kExit, kSlow, kCorrupt, kTruncate };
  Kind kind = Kind::kSigkill;
  int rank = 0;
  std::int64_t step = 0;
  int attempt = 0;  // -1: any
  std::int64_t ms = 0;
};

// The kind's name, as TESSERA_FAULTS spells it.
[[nodiscard]] const char* fault_name(Fault::Kind kind);

// Parses TESSERA_FAULTS' value; throws ConfigError naming the variable and the bad entry.
[[nodiscard]] std::vector<Fault> parse_faults(const std::string& text);

// A TrainerOptions::on_step hook that injects the faults meant for `rank` in `attempt` (corrupt
// and truncate act on `checkpoint_dir`), or nullptr when there are none.
[[nodiscard]] std::function<void(int64_t)> fault_hook(const std::vector<Fault>& faults, int rank,
                                                      int attempt,
                                                      const std::string& checkpoint_dir);

}  // namespace tessera::cli
