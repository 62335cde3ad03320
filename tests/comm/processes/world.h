#pragma once

// Tests run by every rank of a real multi-process job, each collective over the job's world
// group: world_group_tests.cc holds the tests and main(); each backend's file defines world()
// (mpi_world.cc under mpirun, launched_world.cc under `tessera launch`) and may add tests of its
// own. Rank 0 prints gtest's usual output; the other ranks print only their failures.
#include <chrono>
#include <cstddef>

#include "tessera/comm/process_group.h"

namespace tessera::comm::processes {

// The job's world group, made on first use (collective: every rank calls it at start).
ProcessGroup& world();

// Element counts of the checks: past MPI's eager limit, below the MPI backend's ring allreduce.
inline constexpr std::size_t kSizeUnit = 1000;

inline GroupOptions test_options(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  GroupOptions options;
  options.timeout = timeout;
  return options;
}

}  // namespace tessera::comm::processes
