#pragma once

#include <cstdint>

namespace tessera::comm::shm {

// True when process `pid` (another rank of a group on this host) has died or is dying. A killed
// process first frees its memory, which takes a worker holding a data set tens of milliseconds,
// and only then exits; kill(pid, 0) fails later still, once its parent has reaped it. The
// kernel marks the process as exiting at once, and /proc shows the mark: a rank waiting for a
// dead peer gives up that much sooner. False for this process and for pid 0 or less.
bool peer_process_ended(std::int32_t pid);

}  // namespace tessera::comm::shm
