#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// Sizes of a tensor's dimensions, outermost first.
using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
// "[2,3]" — the form every error message uses.
std::string shape_str(const Shape& shape);
// Row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);
// The shape two operands broadcast to (numpy rules); throws ShapeError naming op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Maps a possibly negative axis into [0, dim); throws IndexError naming op.
int64_t normalize_axis(int64_t axis, int64_t dim, const char* op);

}  // namespace tessera
