#pragma once

#include <chrono>

namespace tessera::comm {

// A duration as whole milliseconds, the unit every wait's error message uses.
inline long long to_ms(std::chrono::steady_clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace tessera::comm
