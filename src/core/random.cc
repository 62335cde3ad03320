#include "tessera/core/random.h"

#include <cmath>
#include <numbers>
#include <sstream>

#include "tessera/core/error.h"

namespace tessera {

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
  double u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t Generator::below(uint64_t n) {
  if (n == 0) throw ValueError("Generator::below: n must be > 0");
  // Rejection keeps the result unbiased.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = engine_();
  } while (x >= limit);
  return x % n;
}

std::string Generator::state() const {
  std::ostringstream out;
  out << engine_ << ' ' << has_spare_ << ' ';
  out.precision(17);
  out << std::hexfloat << spare_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 engine;
  bool has_spare = false;
  std::string spare_text;
  in >> engine >> has_spare >> spare_text;
  if (!in) throw FormatError("Generator::set_state: malformed generator state");
  engine_ = engine;
  has_spare_ = has_spare;
  spare_ = std::strtod(spare_text.c_str(), nullptr);
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

}  // namespace tessera
