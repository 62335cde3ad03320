#pragma once

#include <cstdint>

#include "tessera/parallel/ps/tables.h"

// The servers' update rules over a run of elements (a dense shard, or one sparse row). State is
// planar: state slot k of element i is state[k * n + i]. A sparse row keeps its own step count,
// so Adam's bias correction is per row (lazy Adam): rows a batch does not touch are not decayed.
namespace tessera::parallel::ps {

// State floats per element: sgd 1 with momentum (else 0), adagrad 1, adam 2, ftrl 2.
[[nodiscard]] int state_slots(const OptimizerSpec& spec);

// The state of elements never updated (adagrad's initial accumulator; zeros otherwise).
void init_state(const OptimizerSpec& spec, float* state, int64_t n);

// One update of n elements by gradient scale * g (the gradient's weight among the workers', so
// that no pass is spent scaling it first). `step` counts the updates of these elements including
// this one (1 for the first): SGD's momentum starts from the first gradient, Adam corrects its
// bias by it. w, state and g must not overlap.
void apply_update(const OptimizerSpec& spec, float lr, int64_t step, float* w, float* state,
                  const float* g, int64_t n, float scale = 1.0f);

}  // namespace tessera::parallel::ps
