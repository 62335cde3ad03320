#include "gram.h"

#include <algorithm>

#include "tessera/tensor/matmul.h"

namespace tessera::estimators {
namespace {

// x^T x is summed in kOuterTiles x kOuterTiles tiles of columns, the upper ones only.
constexpr int64_t kOuterTiles = 4;

}  // namespace

void add_upper_outer(const Tensor& x, double* out) {
  const int64_t d = x.size(1);
  const int64_t width = (d + kOuterTiles - 1) / kOuterTiles;
  for (int64_t i = 0; i < d; i += width) {
    const int64_t i_end = std::min(d, i + width);
    const Tensor left = x.slice(1, i, i_end);
    for (int64_t j = i; j < d; j += width) {
      const int64_t j_end = std::min(d, j + width);
      Tensor tile = Tensor::empty({i_end - i, j_end - j});
      matmul_into(left.t(), x.slice(1, j, j_end), tile);
      const float* t = tile.data<float>();
      for (int64_t r = i; r < i_end; ++r) {
        for (int64_t c = j; c < j_end; ++c) out[r * d + c] += t[(r - i) * (j_end - j) + (c - j)];
      }
    }
  }
}

void mirror_upper(double* a, int64_t d) {
  for (int64_t r = 0; r < d; ++r) {
    for (int64_t c = 0; c < r; ++c) a[r * d + c] = a[c * d + r];
  }
}

}  // namespace tessera::estimators
