#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/process_group.h"

namespace tessera::comm::testing {

// Options for groups in tests: a short timeout, so a broken test fails in seconds, not minutes.
[[nodiscard]] GroupOptions test_options();

// Runs fn(rank) on n threads and joins them all; then rethrows the exception of the lowest rank
// that threw, if any.
void run_threads(int n, const std::function<void(int rank)>& fn);

// Runs n ranks as threads, each with a Gloo group (loopback TCP) over one shared HashStore, and
// shuts the groups down. Rethrows like run_threads.
void run_ranks(int n, const std::function<void(ProcessGroup& group)>& fn,
               GroupOptions options = test_options());

}  // namespace tessera::comm::testing
