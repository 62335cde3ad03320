#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tessera/core/thread_pool.h"
#include "tessera/tensor/shape.h"

namespace tessera::kernels {

// Runs f(offsets, n, inner_strides) over every element of `shape`, where operand k's element is at
// base_k + offsets[k] + i * inner_strides[k] for i in [0, n). Adjacent dimensions that are
// contiguous in every operand are merged first so the inner loop is as long as possible. Large
// loops are split across the intra-op threads by outer index.
template <size_t N, typename F>
void strided_loop(const Shape& shape, const std::array<Shape, N>& strides, F&& f) {
  // Merge dims (drop size-1 dims, fuse contiguous neighbours).
  Shape sizes;
  std::array<Shape, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sizes.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sizes.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  for (int64_t s : shape) {
    if (s == 0) return;
  }
  if (sizes.empty()) {
    sizes.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(1);
  }
  const size_t dims = sizes.size();
  const int64_t inner = sizes.back();
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = st[k].back();
  int64_t outer = 1;
  for (size_t d = 0; d + 1 < dims; ++d) outer *= sizes[d];

  auto run = [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(dims, 0);
    int64_t rest = begin;
    for (size_t d = dims - 1; d-- > 0;) {
      idx[d] = rest % sizes[d];
      rest /= sizes[d];
    }
    std::array<int64_t, N> off{};
    for (size_t k = 0; k < N; ++k) {
      for (size_t d = 0; d + 1 < dims; ++d) off[k] += idx[d] * st[k][d];
    }
    for (int64_t o = begin; o < end; ++o) {
      f(off, inner, inner_strides);
      for (size_t d = dims - 1; d-- > 0;) {
        for (size_t k = 0; k < N; ++k) off[k] += st[k][d];
        if (++idx[d] < sizes[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= st[k][d] * sizes[d];
        idx[d] = 0;
      }
    }
  };
  parallel_for(outer, grain_for(inner), run);
}

}  // namespace tessera::kernels
