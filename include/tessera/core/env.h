#pragma once

#include <optional>
#include <string>

namespace tessera {

// Reads an environment variable; nullopt when unset or empty.
std::optional<std::string> env_string(const char* name);

// Reads an integer environment variable; throws ValueError naming the variable when it is not an
// integer.
std::optional<long> env_int(const char* name);

}  // namespace tessera
