#pragma once

#include <memory>

#include "tessera/comm/process_group.h"

namespace tessera::comm {

// A ProcessGroup over MPI_COMM_WORLD (a duplicate of it), for jobs started by mpirun or srun.
// Collective: every rank of MPI_COMM_WORLD calls it; it returns within options.timeout or throws
// TimeoutError. rank() and size() are the MPI world rank and size.
//
// MPI is initialised on the first call, once per process, with MPI_THREAD_MULTIPLE (a group's
// collectives run on its own thread, its send/recv wait on another, and sub-groups have threads
// of their own); it is finalised when the process exits. If the program initialised MPI itself
// it keeps that job: tessera then neither initialises nor finalises it, and needs at least
// MPI_THREAD_SERIALIZED (below MPI_THREAD_MULTIPLE every MPI call is serialised by a lock).
//
// Collectives are MPI's non-blocking ones (MPI_Iallreduce, ...) polled with MPI_Test until the
// operation's deadline, since MPI has no timeouts of its own; allreduce of 16K elements or more
// is a ring of MPI_Isend/MPI_Irecv instead (OpenMPI's non-blocking allreduce runs at well under
// half the speed of its blocking one for large buffers). On expiry the operation fails with
// TimeoutError naming it and its group; MPI cannot say which ranks did not arrive. A timed-out
// MPI request cannot be cancelled: MPI may still write into that operation's buffers, the group
// is unusable, and MPI_Finalize is skipped at exit (it would wait for the missing ranks), which
// makes mpirun end the whole job. A rank that dies aborts an MPI job anyway (Debian's OpenMPI
// has no fault tolerance); with Gloo or shared memory the other ranks instead fail with an error
// naming the dead rank.
//
// Reductions use MPI's built-in operations for sums (kAvg divides afterwards) and for integer
// max/min; float max/min (NaN wins, as documented for ReduceOp) and every 16-bit float
// reduction use MPI user operations built on tessera's reduce functions. Counts above INT_MAX
// are split for allreduce, broadcast and reduce; the other operations throw ValueError on them.
// send/recv tags must not exceed MPI_TAG_UB (at least 32767; OpenMPI's is 2^31 - 1).
// GroupOptions::check_consistency exchanges each collective's signature in a small
// MPI_Iallgather first, as the Gloo backend does.
[[nodiscard]] std::unique_ptr<ProcessGroup> make_mpi_group(GroupOptions options = {});

}  // namespace tessera::comm
