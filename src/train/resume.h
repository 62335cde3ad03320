#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/train/checkpoint.h"

namespace tessera::train {

// Collective over `group` (nullptr: this process alone): rank 0 reads the newest valid checkpoint
// in its `dir` and every rank receives it, so all ranks resume from one state whatever their own
// disks hold (nothing, on other machines or with run directories of their own); nullopt on every
// rank when rank 0 has none. On rank 0, `skipped` receives why newer checkpoints were passed over.
[[nodiscard]] std::optional<Checkpoint> checkpoint_of_rank_zero(const CheckpointDir& dir,
                                                                comm::ProcessGroup* group,
                                                                std::vector<std::string>* skipped);

// Collective: runs `load` on every rank, then every rank learns whether all of them succeeded.
// When `load` threw on any rank, every rank throws the same FormatError naming each rank that
// failed, the checkpoint `path` and what that rank's `load` threw; so no rank trains on from a
// state the others do not share. Without a group (or on a group of one) `load`'s own error
// propagates.
void load_on_every_rank(comm::ProcessGroup* group, const std::string& path,
                        const std::function<void()>& load);

}  // namespace tessera::train
