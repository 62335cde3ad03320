#pragma once

#include <string>

namespace tessera::testing {

// Whether an error message or a log holds `part`.
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace tessera::testing
