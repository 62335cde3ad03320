#include "tessera/tensor/conv.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "blas.h"
#include "dnnl_conv.h"
#include "tessera/core/thread_pool.h"

namespace tessera {
namespace {

struct ConvGeometry {
  int64_t n, c, h, w, o, kh, kw, oh, ow, stride, pad;
  int64_t k() const { return c * kh * kw; }
  int64_t ohw() const { return oh * ow; }
};

ConvGeometry conv_geometry(const Tensor& input, const Tensor& weight, const Tensor& bias,
                           const Conv2dOptions& opt) {
  if (input.dim() != 4 || weight.dim() != 4 || input.size(1) != weight.size(1)) {
    throw ShapeError(detail::concat("conv2d: input ", shape_str(input.shape()),
                                    " must be [N, C, H, W] and weight ", shape_str(weight.shape()),
                                    " [O, C, kh, kw] with the same C"));
  }
  if (input.dtype() != weight.dtype()) {
    throw DTypeError(detail::concat("conv2d: input ", dtype_name(input.dtype()), " ",
                                    shape_str(input.shape()), " and weight ",
                                    dtype_name(weight.dtype()), " ", shape_str(weight.shape())));
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    throw ShapeError(detail::concat("conv2d: bias ", shape_str(bias.shape()), " must be [",
                                    weight.size(0), "] for weight ", shape_str(weight.shape())));
  }
  if (opt.stride < 1 || opt.padding < 0) {
    throw ValueError(detail::concat("conv2d: stride ", opt.stride, " must be >= 1 and padding ",
                                    opt.padding, " >= 0"));
  }
  ConvGeometry g{input.size(0),
                 input.size(1),
                 input.size(2),
                 input.size(3),
                 weight.size(0),
                 weight.size(2),
                 weight.size(3),
                 0,
                 0,
                 opt.stride,
                 opt.padding};
  g.oh = (g.h + 2 * g.pad - g.kh) / g.stride + 1;
  g.ow = (g.w + 2 * g.pad - g.kw) / g.stride + 1;
  if (g.h + 2 * g.pad < g.kh || g.w + 2 * g.pad < g.kw) {
    throw ShapeError(detail::concat("conv2d: kernel ", g.kh, "x", g.kw,
                                    " larger than padded input ", shape_str(input.shape()),
                                    " with padding ", g.pad));
  }
  return g;
}

// Samples per GEMM: enough to make the GEMM large, few enough that the column buffer stays near
// 16 MiB of float32.
kernels::ConvShape dnnl_shape(const ConvGeometry& g) {
  return {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow, g.stride, g.pad};
}

int64_t group_size(const ConvGeometry& g) {
  constexpr int64_t kMaxColumnElements = 4 << 20;
  return std::clamp<int64_t>(kMaxColumnElements / std::max<int64_t>(g.k() * g.ohw(), 1), 1, g.n);
}

// cols[(c, i, j), (s, y, x)] = input[s, c, y*stride - pad + i, x*stride - pad + j] for the samples
// [first, first + count); ld = count * ohw.
template <typename T>
void im2col(const T* input, const ConvGeometry& g, int64_t first, int64_t count, T* cols) {
  const int64_t ld = count * g.ohw();
  parallel_for(g.k(), grain_for(count * g.ohw()), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t c = row / (g.kh * g.kw);
      int64_t i = row / g.kw % g.kh;
      int64_t j = row % g.kw;
      for (int64_t s = 0; s < count; ++s) {
        const T* plane = input + ((first + s) * g.c + c) * g.h * g.w;
        T* dst = cols + row * ld + s * g.ohw();
        for (int64_t y = 0; y < g.oh; ++y) {
          int64_t iy = y * g.stride - g.pad + i;
          T* d = dst + y * g.ow;
          if (iy < 0 || iy >= g.h) {
            std::fill(d, d + g.ow, T(0));
            continue;
          }
          const T* src = plane + iy * g.w;
          for (int64_t x = 0; x < g.ow; ++x) {
            int64_t ix = x * g.stride - g.pad + j;
            d[x] = (ix >= 0 && ix < g.w) ? src[ix] : T(0);
          }
        }
      }
    }
  });
}

// Adds the columns back into the input gradient (the transpose of im2col).
template <typename T>
void col2im(const T* cols, const ConvGeometry& g, int64_t first, int64_t count, T* grad_input) {
  const int64_t ld = count * g.ohw();
  // Parallel over (sample, channel) planes: each plane is written by one thread only.
  parallel_for(count * g.c, grain_for(g.kh * g.kw * g.ohw()), [&](int64_t begin, int64_t end) {
    for (int64_t sc = begin; sc < end; ++sc) {
      int64_t s = sc / g.c;
      int64_t c = sc % g.c;
      T* plane = grad_input + ((first + s) * g.c + c) * g.h * g.w;
      for (int64_t i = 0; i < g.kh; ++i) {
        for (int64_t j = 0; j < g.kw; ++j) {
          const T* src = cols + ((c * g.kh + i) * g.kw + j) * ld + s * g.ohw();
          for (int64_t y = 0; y < g.oh; ++y) {
            int64_t iy = y * g.stride - g.pad + i;
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t x = 0; x < g.ow; ++x) {
              int64_t ix = x * g.stride - g.pad + j;
              if (ix >= 0 && ix < g.w) plane[iy * g.w + ix] += src[y * g.ow + x];
            }
          }
        }
      }
    }
  });
}

}  // namespace

Tensor conv2d(const Tensor& input_view, const Tensor& weight_view, const Tensor& bias_view,
              const Conv2dOptions& options) {
  ConvGeometry g = conv_geometry(input_view, weight_view, bias_view, options);
  Tensor input = input_view.contiguous();
  Tensor weight = weight_view.contiguous();
  Tensor bias = bias_view.defined() ? bias_view.contiguous() : bias_view;
  Tensor out = Tensor::empty({g.n, g.o, g.oh, g.ow}, input.dtype());
  if (input.dtype() == DType::kFloat32) {
    kernels::dnnl_conv2d_forward(dnnl_shape(g), input.data<float>(), weight.data<float>(),
                                 bias.defined() ? bias.data<float>() : nullptr, out.data<float>());
    return out;
  }
  const int64_t group = group_size(g);
  TESSERA_DISPATCH_FLOATING(input.dtype(), "conv2d", [&] {
    const scalar_t* x = input.data<scalar_t>();
    const scalar_t* wt = weight.data<scalar_t>();
    const scalar_t* b = bias.defined() ? bias.data<scalar_t>() : nullptr;
    scalar_t* y = out.data<scalar_t>();
    std::vector<scalar_t> cols(static_cast<size_t>(g.k() * group * g.ohw()));
    std::vector<scalar_t> tmp(static_cast<size_t>(g.o * group * g.ohw()));
    for (int64_t first = 0; first < g.n; first += group) {
      int64_t count = std::min(group, g.n - first);
      int64_t ld = count * g.ohw();
      im2col(x, g, first, count, cols.data());
      kernels::gemm<scalar_t>(false, false, g.o, ld, g.k(), 1, wt, g.k(), cols.data(), ld, 0,
                              tmp.data(), ld);
      // tmp is [O, (s, oh, ow)]: scatter to [s, O, oh, ow] and add the bias.
      parallel_for(count * g.o, grain_for(g.ohw()), [&](int64_t begin, int64_t end) {
        for (int64_t so = begin; so < end; ++so) {
          int64_t s = so / g.o;
          int64_t o = so % g.o;
          const scalar_t* src = tmp.data() + o * ld + s * g.ohw();
          scalar_t* dst = y + ((first + s) * g.o + o) * g.ohw();
          scalar_t bo = b ? b[o] : scalar_t(0);
          for (int64_t p = 0; p < g.ohw(); ++p) dst[p] = src[p] + bo;
        }
      });
    }
  });
  return out;
}

Conv2dGrads conv2d_backward(const Tensor& grad_output_view, const Tensor& input_view,
                            const Tensor& weight_view, const Conv2dOptions& options,
                            bool need_input, bool need_bias) {
  ConvGeometry g = conv_geometry(input_view, weight_view, Tensor(), options);
  Shape expected{g.n, g.o, g.oh, g.ow};
  if (grad_output_view.shape() != expected) {
    throw ShapeError(detail::concat("conv2d_backward: grad ", shape_str(grad_output_view.shape()),
                                    " != output shape ", shape_str(expected)));
  }
  Tensor input = input_view.contiguous();
  Tensor weight = weight_view.contiguous();
  Tensor grad_output = grad_output_view.contiguous();
  Conv2dGrads grads;
  if (input.dtype() == DType::kFloat32) {
    grads.weight = Tensor::empty(weight.shape(), weight.dtype());
    if (need_bias) grads.bias = Tensor::empty({g.o}, weight.dtype());
    kernels::dnnl_conv2d_backward_weights(dnnl_shape(g), input.data<float>(),
                                          grad_output.data<float>(), grads.weight.data<float>(),
                                          need_bias ? grads.bias.data<float>() : nullptr);
    if (need_input) {
      grads.input = Tensor::empty(input.shape(), input.dtype());
      kernels::dnnl_conv2d_backward_data(dnnl_shape(g), grad_output.data<float>(),
                                         weight.data<float>(), grads.input.data<float>());
    }
    return grads;
  }
  grads.weight = Tensor::zeros(weight.shape(), weight.dtype());
  if (need_input) grads.input = Tensor::zeros(input.shape(), input.dtype());
  if (need_bias) grads.bias = Tensor::zeros({g.o}, weight.dtype());
  const int64_t group = group_size(g);
  TESSERA_DISPATCH_FLOATING(input.dtype(), "conv2d_backward", [&] {
    const scalar_t* x = input.data<scalar_t>();
    const scalar_t* wt = weight.data<scalar_t>();
    const scalar_t* gy = grad_output.data<scalar_t>();
    scalar_t* gw = grads.weight.data<scalar_t>();
    std::vector<scalar_t> cols(static_cast<size_t>(g.k() * group * g.ohw()));
    std::vector<scalar_t> gy_cols(static_cast<size_t>(g.o * group * g.ohw()));
    for (int64_t first = 0; first < g.n; first += group) {
      int64_t count = std::min(group, g.n - first);
      int64_t ld = count * g.ohw();
      // gy_cols[o, (s, p)] = grad_output[first + s, o, p]
      parallel_for(count * g.o, grain_for(g.ohw()), [&](int64_t begin, int64_t end) {
        for (int64_t so = begin; so < end; ++so) {
          int64_t s = so / g.o;
          int64_t o = so % g.o;
          std::memcpy(gy_cols.data() + o * ld + s * g.ohw(), gy + ((first + s) * g.o + o) * g.ohw(),
                      static_cast<size_t>(g.ohw()) * sizeof(scalar_t));
        }
      });
      im2col(x, g, first, count, cols.data());
      // dW[O, K] += gy_cols[O, L] @ cols[K, L]^T
      kernels::gemm<scalar_t>(false, true, g.o, g.k(), ld, 1, gy_cols.data(), ld, cols.data(), ld,
                              1, gw, g.k());
      if (need_bias) {
        scalar_t* gb = grads.bias.data<scalar_t>();
        for (int64_t o = 0; o < g.o; ++o) {
          const scalar_t* row = gy_cols.data() + o * ld;
          scalar_t acc = 0;
          for (int64_t p = 0; p < ld; ++p) acc += row[p];
          gb[o] += acc;
        }
      }
      if (need_input) {
        // dcols[K, L] = W[O, K]^T @ gy_cols[O, L], reusing the column buffer.
        kernels::gemm<scalar_t>(true, false, g.k(), ld, g.o, 1, wt, g.k(), gy_cols.data(), ld, 0,
                                cols.data(), ld);
        col2im(cols.data(), g, first, count, grads.input.data<scalar_t>());
      }
    }
  });
  return grads;
}

MaxPoolResult max_pool2d(const Tensor& input_view, const Pool2dOptions& options) {
  if (input_view.dim() != 4) {
    throw ShapeError("max_pool2d: expected input [N, C, H, W], got " +
                     shape_str(input_view.shape()));
  }
  const int64_t k = options.kernel;
  const int64_t s = options.stride == 0 ? k : options.stride;
  const int64_t p = options.padding;
  if (k < 1 || s < 1 || p < 0 || p > k / 2) {
    throw ValueError(detail::concat("max_pool2d: kernel ", k, ", stride ", s, ", padding ", p,
                                    ": need kernel, stride >= 1 and 0 <= padding <= kernel/2"));
  }
  Tensor input = input_view.contiguous();
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  if (h + 2 * p < k || w + 2 * p < k) {
    throw ShapeError(detail::concat("max_pool2d: kernel ", k, " larger than padded input ",
                                    shape_str(input.shape())));
  }
  const int64_t oh = (h + 2 * p - k) / s + 1;
  const int64_t ow = (w + 2 * p - k) / s + 1;
  MaxPoolResult result{Tensor::empty({n, c, oh, ow}, input.dtype()),
                       Tensor::empty({n, c, oh, ow}, DType::kInt64)};
  TESSERA_DISPATCH_FLOATING(input.dtype(), "max_pool2d", [&] {
    const scalar_t* x = input.data<scalar_t>();
    scalar_t* y = result.output.data<scalar_t>();
    int64_t* idx = result.indices.data<int64_t>();
    parallel_for(n * c, grain_for(oh * ow * k * k), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* xp = x + plane * h * w;
        if (p == 0) {
          // Every window lies inside the plane: no bounds checks, and the comparisons select
          // without branching. The branchy loop, whose branches follow the data, took 19.6% of
          // a 1-thread CNN run under perf (29 ms of a 150 ms step).
          for (int64_t i = 0; i < oh; ++i) {
            for (int64_t j = 0; j < ow; ++j) {
              const int64_t corner = i * s * w + j * s;
              scalar_t best = xp[corner];
              int64_t best_at = corner;
              for (int64_t di = 0; di < k; ++di) {
                for (int64_t dj = 0; dj < k; ++dj) {
                  const int64_t at = corner + di * w + dj;
                  const scalar_t v = xp[at];
                  const bool greater = v > best;
                  best = greater ? v : best;
                  best_at = greater ? at : best_at;
                }
              }
              y[(plane * oh + i) * ow + j] = best;
              idx[(plane * oh + i) * ow + j] = best_at;
            }
          }
          continue;
        }
        for (int64_t i = 0; i < oh; ++i) {
          for (int64_t j = 0; j < ow; ++j) {
            scalar_t best = -std::numeric_limits<scalar_t>::infinity();
            int64_t best_at = -1;
            for (int64_t di = 0; di < k; ++di) {
              int64_t yy = i * s - p + di;
              if (yy < 0 || yy >= h) continue;
              for (int64_t dj = 0; dj < k; ++dj) {
                int64_t xx = j * s - p + dj;
                if (xx < 0 || xx >= w) continue;
                scalar_t v = xp[yy * w + xx];
                if (v > best || best_at < 0) {
                  best = v;
                  best_at = yy * w + xx;
                }
              }
            }
            y[(plane * oh + i) * ow + j] = best;
            idx[(plane * oh + i) * ow + j] = best_at;
          }
        }
      }
    });
  });
  return result;
}

Tensor max_pool2d_backward(const Tensor& grad_output_view, const Tensor& indices_view,
                           const Shape& input_shape) {
  if (grad_output_view.shape() != indices_view.shape() || input_shape.size() != 4) {
    throw ShapeError(detail::concat(
        "max_pool2d_backward: grad ", shape_str(grad_output_view.shape()), ", indices ",
        shape_str(indices_view.shape()), ", input ", shape_str(input_shape)));
  }
  Tensor grad_output = grad_output_view.contiguous();
  Tensor indices = indices_view.contiguous();
  Tensor grad_input = Tensor::zeros(input_shape, grad_output.dtype());
  const int64_t planes = input_shape[0] * input_shape[1];
  const int64_t in_plane = input_shape[2] * input_shape[3];
  const int64_t out_plane = grad_output.size(2) * grad_output.size(3);
  TESSERA_DISPATCH_FLOATING(grad_output.dtype(), "max_pool2d_backward", [&] {
    const scalar_t* gy = grad_output.data<scalar_t>();
    const int64_t* idx = indices.data<int64_t>();
    scalar_t* gx = grad_input.data<scalar_t>();
    parallel_for(planes, grain_for(out_plane), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        for (int64_t q = 0; q < out_plane; ++q) {
          gx[plane * in_plane + idx[plane * out_plane + q]] += gy[plane * out_plane + q];
        }
      }
    });
  });
  return grad_input;
}

}  // namespace tessera
