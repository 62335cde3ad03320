#pragma once

#include <cstdint>
#include <string>

namespace tessera {

// Bytes of physical memory on this machine (what a process could use at most without swap).
[[nodiscard]] uint64_t physical_memory_bytes();

// "512 B", "3.0 KiB", "1.5 GiB": sizes as errors and logs show them.
[[nodiscard]] std::string format_bytes(uint64_t bytes);

}  // namespace tessera
