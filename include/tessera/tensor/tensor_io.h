#pragma once

#include "tessera/core/serialize.h"
#include "tessera/tensor/tensor.h"

namespace tessera {

// Writes dtype, shape and the elements (contiguous, little-endian) of a tensor.
void write_tensor(BinaryWriter& out, const Tensor& tensor);
// Reads what write_tensor wrote; a bad dtype code, an absurd rank or size, or a short read throws
// FormatError naming the source and byte offset.
Tensor read_tensor(BinaryReader& in);

}  // namespace tessera
