#pragma once

namespace tessera::data {

// How raw values become features: x = (raw * scale - mean) / std.
// The default maps 8-bit pixels to [0, 1] and does not centre them (mean 0, std 1).
struct NormalizeOptions {
  double scale = 1.0 / 255.0;
  double mean = 0.0;
  double std = 1.0;

  // The same map as one multiply-add: x = raw * multiplier() + offset().
  [[nodiscard]] double multiplier() const { return scale / std; }
  [[nodiscard]] double offset() const { return -mean / std; }
};

}  // namespace tessera::data
