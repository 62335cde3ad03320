#include "tessera/core/env.h"

#include <cerrno>
#include <cstdlib>

#include "tessera/core/error.h"

namespace tessera {

std::optional<std::string> env_string(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

std::optional<long> env_int(const char* name) {
  auto text = env_string(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text->c_str(), &end, 10);
  // ERANGE: strtol clamps an out-of-range value to LONG_MIN/LONG_MAX; refuse it instead.
  if (end == text->c_str() || *end != '\0' || errno == ERANGE) {
    throw ValueError(detail::concat("environment variable ", name, "='", *text, "' is not ",
                                    errno == ERANGE ? "in the range of long" : "an integer"));
  }
  return value;
}

}  // namespace tessera
