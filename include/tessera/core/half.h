#pragma once

#include <cstdint>

namespace tessera {

// Conversions between float and the 16-bit float formats, as raw bits (their storage). From float:
// round to nearest, ties to even; overflow gives infinity; NaN stays NaN (quiet). To float: exact.
// Portable bit manipulation, so every compiler gives the same bits.
[[nodiscard]] std::uint16_t bfloat16_from_float(float value);
[[nodiscard]] float bfloat16_to_float(std::uint16_t bits);
[[nodiscard]] std::uint16_t float16_from_float(float value);
[[nodiscard]] float float16_to_float(std::uint16_t bits);

}  // namespace tessera
