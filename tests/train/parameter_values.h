#pragma once

#include <vector>

#include "tessera/train/trainer.h"

namespace tessera::train {

// Every parameter of the trainer's model, in order, to compare runs.
inline std::vector<std::vector<float>> parameter_values(Trainer& t) {
  std::vector<std::vector<float>> out;
  for (auto& p : t.model().parameters()) out.push_back(p.data().to_vector<float>());
  return out;
}

}  // namespace tessera::train
