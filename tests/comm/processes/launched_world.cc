// The world group of the process tests run through tessera's own launcher: ctest runs them under
// `tessera launch --nproc N --backend B` for N = 1..5 and B = gloo, shm (see CMakeLists.txt
// here). The group comes from the environment the launcher sets, as in any user's program.
#include <memory>

#include "comm/processes/world.h"
#include "tessera/comm/init.h"

namespace tessera::comm::processes {

ProcessGroup& world() {
  static std::unique_ptr<ProcessGroup> group = init_from_env({.group = test_options()});
  return *group;
}

}  // namespace tessera::comm::processes
