#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/comm/store.h"

namespace tessera::comm {

// Bytes each rank moves through the segment per pipeline step. Three such slots per rank: a rank
// fills the next while the others still read the previous ones. 256 KiB keeps every slot of a
// few ranks in the L2/L3 caches (the copies in and out of the segment then run at cache speed)
// while the per-step synchronisation (about a microsecond) stays small next to copying a slot;
// 128 KiB and 512 KiB measured within noise of it (2 ranks, 1-16 MiB).
inline constexpr std::size_t kDefaultShmSlotBytes = std::size_t{256} << 10;

// Address space each rank reserves in the segment for ProcessGroup::allocate(). Only what is
// allocated takes memory (/dev/shm pages, reserved at allocation so that a full /dev/shm gives
// ordinary memory instead of a SIGBUS later); enough for the gradient buckets of a model of 64M
// float32 parameters.
inline constexpr std::size_t kDefaultShmPoolBytes = std::size_t{256} << 20;

struct ShmOptions {
  // The segment is /dev/shm/<prefix>-<random>-<group name>: a launcher passes a prefix unique to
  // the job ("tessera-<job id>") so it can remove what a worker killed during setup left behind.
  // Names in /dev/shm are visible to every local user: never put a secret here. Letters, digits,
  // '-', '_' and '.' only.
  std::string segment_name_prefix = "tessera";
  // Pipeline slot size (see kDefaultShmSlotBytes); a multiple of 64, at least 64 * size.
  std::size_t slot_bytes = kDefaultShmSlotBytes;
  // Each rank's pool for ProcessGroup::allocate() (see kDefaultShmPoolBytes); 0: none, and no
  // allreduce takes the step that looks for pooled buffers.
  std::size_t pool_bytes = kDefaultShmPoolBytes;
};

// A ProcessGroup for ranks on one host, through one POSIX shared-memory segment. Collective:
// every rank of the group calls it with the same store, size and options.name, and its own rank;
// it returns within options.timeout or throws TimeoutError naming the ranks that did not come.
//
// Segment lifetime: rank 0 creates the segment (shm_open under /dev/shm), announces its name
// under "comm/<name>/shm/" in the store, and removes the name (shm_unlink) as soon as every rank
// has mapped it, before this function returns. From then on the memory lives only as long as
// the ranks' mappings: nothing remains in /dev/shm after the group is shut down, nor after any
// rank crashes. Only a crash during setup (between creation and the last rank mapping it) can
// leave a name behind; it starts with segment_name_prefix, for the launcher to remove.
//
// Collectives run natively through the segment, one slot-sized chunk at a time, pipelined over
// three slots per rank so buffers of any size stream through: allreduce is a chunked
// reduce-scatter + allgather (each rank reduces its 1/size slice of a chunk, reading every rank's
// slot, then every rank copies the reduced slices out). When every rank's buffer comes from
// allocate() (the ranks' pools in the segment), allreduce skips the slots: each rank reduces its
// slice straight from the others' buffers and writes the result into all of them, in two steps
// (a group with a pool spends one extra step per allreduce finding out). broadcast, allgather(v),
// reduce_scatter, gather, scatter, alltoall and barrier go through the slots likewise; reduce is an
// allreduce whose result only the root copies out. The caller's thread does the copies and
// reductions (no thread hand-off when it waits at once); nothing makes a system call unless a rank
// has to sleep. send/recv go through per-pair rings in the segment and progress on a helper thread
// (started by the first send or recv); their handles complete in issue order.
//
// Waiting: ranks spin briefly, then yield, then sleep on a futex in the segment. Every wait ends
// by the operation's deadline with a TimeoutError naming the operation, the group, the ranks
// that did not arrive and what they last did. A rank whose process exited, or that failed or
// shut its group down, makes the others fail at once (CommError, or TimeoutError when it timed
// out) instead of at their deadline.
//
// Consistency: each rank publishes every collective's signature (kind, dtype, count, root, op)
// in the segment, and ranks compare it when they first meet in the collective; ranks that issue
// different collectives get CollectiveMismatchError naming the first diverging rank. This costs
// a few cache-line reads, so it is always on (GroupOptions::check_consistency is not needed).
//
// Threads: like every ProcessGroup (one caller thread per group object). Ranks may be threads of
// one process (each maps the segment itself) or processes.
[[nodiscard]] std::unique_ptr<ProcessGroup> make_shm_group(std::shared_ptr<Store> store, int rank,
                                                           int size, GroupOptions options = {},
                                                           ShmOptions shm_options = {});

}  // namespace tessera::comm
