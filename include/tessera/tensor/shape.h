#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// Sizes of a tensor's dimensions, outermost first.
using Shape = std::vector<int64_t>;

// The number of elements. Throws ShapeError naming `op` and the shape when a dimension is negative
// or the product does not fit in int64 (a corrupt or hostile size, never a real tensor).
int64_t shape_numel(const Shape& shape, const char* op = "shape");
// Bytes of `numel` elements of `element_size` bytes; ShapeError naming `op` and `shape` when that
// does not fit in size_t.
size_t shape_bytes(const Shape& shape, size_t element_size, const char* op);
// "[2,3]" — the form every error message uses.
std::string shape_str(const Shape& shape);
// Row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);
// The shape two operands broadcast to (numpy rules); throws ShapeError naming op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Maps a possibly negative axis into [0, dim); throws IndexError naming op.
int64_t normalize_axis(int64_t axis, int64_t dim, const char* op);

}  // namespace tessera
