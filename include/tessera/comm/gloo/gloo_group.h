#pragma once

#include <memory>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/comm/store.h"

namespace tessera::comm {

struct GlooOptions {
  // Address or host name the TCP transport binds to and advertises to peers. Loopback by
  // default: a job spanning hosts passes this host's address on the network the ranks share.
  std::string hostname = "127.0.0.1";
  // A network interface name ("eth1") instead of hostname; used when non-empty.
  std::string iface;
};

// A ProcessGroup over Gloo's TCP transport. Collective: every rank of the group calls it with
// the same store, size and options.name, and its own rank. The ranks meet through `store` (keys
// under "comm/<name>/"), connect to each other, and return within options.timeout or throw
// TimeoutError naming the ranks that did not join.
//
// Reductions use Gloo's algorithms with tessera's reduce functions (16-bit floats are summed in
// float and rounded to nearest even at each step); reduce_scatter is a ring over Gloo's
// point-to-point buffers. Nothing is copied on the way to Gloo: allreduce runs in place on the
// caller's buffer.
[[nodiscard]] std::unique_ptr<ProcessGroup> make_gloo_group(std::shared_ptr<Store> store, int rank,
                                                            int size, GroupOptions options = {},
                                                            GlooOptions gloo_options = {});

}  // namespace tessera::comm
