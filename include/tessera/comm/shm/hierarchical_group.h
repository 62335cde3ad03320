#pragma once

#include <memory>

#include "tessera/comm/process_group.h"
#include "tessera/comm/shm/shm_group.h"
#include "tessera/comm/store.h"

namespace tessera::comm {

// A ProcessGroup for a job that spans hosts, built from three groups:
//   `global`   every rank of the job (Gloo or MPI), each host's ranks consecutive and in local
//              rank order (rank = ranks on the hosts before + local rank: the launcher's order
//              and mpirun's default by-slot order);
//   `local`    the ranks on this host (a shared-memory group), local rank = its rank;
//   `leaders`  the local rank 0s, in host order; null on every other rank.
// allreduce reduces within each host through shared memory, allreduces the hosts' results among
// the leaders, and broadcasts them within each host: only one rank per host talks to the
// network. broadcast goes to the root's host, across the leaders, then within the other hosts;
// reduce is an allreduce (other ranks' buffers are scratch by contract); barrier goes local,
// leaders, local. Every other operation, send/recv and split run on `global` (split returns a
// plain sub-group of it).
//
// kAvg sums at every stage and divides once by size() at the end, as one flat group would.
// rank(), size(), name() and options() are the global group's. Errors of a stage name the stage's
// group ("allreduce #3 on group world/leaders: ...") after this group's operation.
// Threading: like every ProcessGroup; operations run in issue order on the group's own thread.
// Takes ownership of the three groups and shuts them down with itself.
[[nodiscard]] std::unique_ptr<ProcessGroup> make_hierarchical_group(
    std::unique_ptr<ProcessGroup> global, std::unique_ptr<ProcessGroup> local,
    std::unique_ptr<ProcessGroup> leaders);

// The same, building `local` (make_shm_group through `store`, named "<global name>/host<H>") and
// `leaders` (a split of `global`, "<global name>/leaders") itself. Collective over `global`;
// every rank passes its local rank and the number of ranks on its host. Throws ValueError when
// the hosts' ranks are not consecutive in `global` (naming the first rank out of place).
[[nodiscard]] std::unique_ptr<ProcessGroup> make_hierarchical_group(
    std::unique_ptr<ProcessGroup> global, std::shared_ptr<Store> store, int local_rank,
    int local_size, ShmOptions shm_options = {});

}  // namespace tessera::comm
