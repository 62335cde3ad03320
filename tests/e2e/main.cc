// The e2e test binary. With TESSERA_E2E_ROLE set it is not a test run but one worker process that
// a test started (see init_env_test.cc); otherwise it runs the tests.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "tessera/comm/errors.h"
#include "tessera/comm/init.h"

namespace {

// Joins through init_from_env with the consistency check on; rank 0 issues an allreduce where
// rank 1 issues a broadcast. Exits 3 on CollectiveMismatchError (its message on stdout), 4 on any
// other error, 0 when the mismatch went unnoticed.
int mismatch_role() {
  try {
    tessera::comm::InitOptions options;
    options.group.check_consistency = true;
    auto group = tessera::comm::init_from_env(options);
    std::vector<float> data(4, 1.0f);
    auto work = group->rank() == 0
                    ? group->allreduce(std::span<float>(data), tessera::comm::ReduceOp::kSum)
                    : group->broadcast(std::span<float>(data), 0);
    work->wait();
    return 0;
  } catch (const tessera::comm::CollectiveMismatchError& e) {
    std::printf("%s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected error: %s\n", e.what());
    return 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* role = std::getenv("TESSERA_E2E_ROLE")) {
    if (std::string(role) == "mismatch") return mismatch_role();
    std::fprintf(stderr, "unknown TESSERA_E2E_ROLE %s\n", role);
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
