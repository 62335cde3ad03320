#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::train {

// A split model's state (Module::save_state's format: named tensors) put together and taken
// apart, so that the checkpoint of a model cut into pipeline stages is the whole model's, loadable
// by one process, and the whole model's state loads into any cut of it.

// The whole model's state from each stage's: every name once, in the stages' order (a weight that
// two stages hold, a tied embedding, is equal on both).
[[nodiscard]] std::string merge_stage_states(const std::vector<std::string>& stages,
                                             const std::string& source);

// What a process keeps of a whole entry: the entry itself, or a tensor-parallel rank's part.
using EntryPart = std::function<Tensor(const std::string& name, const Tensor& whole)>;

// The entries of `whole` whose names `stage` has, each as `part` cuts it (none: whole), as a state
// `stage` loads; an entry it lacks is left for Module::load_state to name.
[[nodiscard]] std::string stage_state(const std::string& whole, const nn::Module& stage,
                                      const std::string& source, const EntryPart& part = {});

}  // namespace tessera::train
