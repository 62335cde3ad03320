#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace tessera {

// splitmix64's finaliser: x's 64 bits mixed into a hash where each input bit flips half the
// output's. Keyed draws (a value fixed by a seed and an index, on any process) are built on it.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform draw in [0, 1) fixed by (seed, stream, index): the same on any process that asks, so
// a sample keyed by row index does not depend on how the rows are split over processes.
inline double keyed_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<double>(mix64(mix64(seed ^ mix64(stream)) ^ index) >> 11) * 0x1.0p-53;
}

// Deterministic random numbers from a seed: the same seed gives the same sequence on every
// platform (distributions are computed here, not by the standard library). Not thread-safe.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); }
  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  // Standard normal by Box-Muller.
  double normal();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);

  // The whole state as text (for checkpoints); from_state restores it exactly.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The process-wide generator used when a caller passes none (initialisation, dropout).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace tessera
