#pragma once

#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/nn/module.h"

namespace tessera::parallel {

// Collective: checks that every rank built the same model (parameter and buffer names, shapes and
// dtypes, in order). On a difference every rank throws the same Error naming the first differing
// entry as rank 0 and the other rank have it.
void check_same_model(const nn::Module& model, comm::ProcessGroup& group, const char* who);

// Collective: every rank's bytes, in rank order.
[[nodiscard]] std::vector<std::string> allgather_bytes(comm::ProcessGroup& group,
                                                       const std::string& bytes);

// Collective: `root`'s bytes, on every rank (the others' `bytes` are ignored).
[[nodiscard]] std::string broadcast_bytes(comm::ProcessGroup& group, const std::string& bytes,
                                          int root);

// Collective: copies rank 0's parameters and buffers to every rank, in place.
void broadcast_module(const nn::Module& model, comm::ProcessGroup& group);

}  // namespace tessera::parallel
