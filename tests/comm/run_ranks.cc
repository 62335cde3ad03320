#include "run_ranks.h"

#include <exception>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

namespace tessera::comm::testing {

GroupOptions test_options() {
  GroupOptions options;
  options.timeout = std::chrono::seconds(20);
  return options;
}

void run_threads(int n, const std::function<void(int rank)>& fn) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int rank = 0; rank < n; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        fn(rank);
      } catch (...) {
        errors[static_cast<std::size_t>(rank)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

void run_ranks(int n, const std::function<void(ProcessGroup& group)>& fn, GroupOptions options) {
  auto store = std::make_shared<HashStore>(options.timeout);
  // No rank starts fn before every rank has its group: one whose fn ends at once would otherwise
  // close connections another rank is still setting up, failing that rank's rendezvous. Each
  // thread arrives within the rendezvous deadline, connected or failed.
  std::latch connected(n);
  run_threads(n, [&](int rank) {
    std::unique_ptr<ProcessGroup> group;
    try {
      group = make_gloo_group(store, rank, n, options);
    } catch (...) {
      connected.count_down();
      throw;
    }
    connected.arrive_and_wait();
    fn(*group);
    group->shutdown();
  });
}

}  // namespace tessera::comm::testing
