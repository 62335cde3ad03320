#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tessera::testing {

// The largest difference between `a` and `b`, relative to the largest value of `b`: how far a
// tensor computed another way (split, pipelined) is from the reference, as float32 rounding
// allows about 1e-6. Infinite when the sizes differ.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

}  // namespace tessera::testing
