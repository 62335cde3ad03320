#pragma once

#include <functional>
#include <string>

#include "tessera/core/serialize.h"

namespace tessera::train {

// The bytes of a checkpoint section that `write` produces.
[[nodiscard]] std::string to_bytes(const std::function<void(BinaryWriter&)>& write);

// Runs `read` over a section's bytes; a short read throws FormatError naming `what` (the file).
void from_bytes(const std::string& bytes, const std::string& what,
                const std::function<void(BinaryReader&)>& read);

}  // namespace tessera::train
