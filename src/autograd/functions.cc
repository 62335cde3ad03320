#include "tessera/autograd/functions.h"

#include <algorithm>
#include <cmath>

#include "tessera/autograd/node.h"
#include "tessera/core/thread_pool.h"
#include "tessera/tensor/elementwise.h"
#include "tessera/tensor/embedding.h"
#include "tessera/tensor/matmul.h"
#include "tessera/tensor/reduce.h"
#include "tessera/tensor/softmax.h"

namespace tessera::autograd {

namespace t = ::tessera;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

Variable add(const Variable& a, const Variable& b) {
  Shape sa = a.shape(), sb = b.shape();
  return make_result(
      t::add(a.data(), b.data()), "add", {a, b},
      [sa, sb](const Tensor& g, const Needs& n) -> Grads {
        return {n[0] ? t::sum_to(g, sa) : Tensor(), n[1] ? t::sum_to(g, sb) : Tensor()};
      });
}

Variable sub(const Variable& a, const Variable& b) {
  Shape sa = a.shape(), sb = b.shape();
  return make_result(
      t::sub(a.data(), b.data()), "sub", {a, b},
      [sa, sb](const Tensor& g, const Needs& n) -> Grads {
        return {n[0] ? t::sum_to(g, sa) : Tensor(), n[1] ? t::sum_to(t::neg(g), sb) : Tensor()};
      });
}

Variable mul(const Variable& a, const Variable& b) {
  Tensor x = a.data(), y = b.data();
  return make_result(t::mul(x, y), "mul", {a, b}, [x, y](const Tensor& g, const Needs& n) -> Grads {
    return {n[0] ? t::sum_to(t::mul(g, y), x.shape()) : Tensor(),
            n[1] ? t::sum_to(t::mul(g, x), y.shape()) : Tensor()};
  });
}

Variable div(const Variable& a, const Variable& b) {
  Tensor x = a.data(), y = b.data();
  return make_result(t::div(x, y), "div", {a, b}, [x, y](const Tensor& g, const Needs& n) -> Grads {
    Tensor ga, gb;
    if (n[0]) ga = t::sum_to(t::div(g, y), x.shape());
    if (n[1]) gb = t::sum_to(t::neg(t::div(t::mul(g, x), t::mul(y, y))), y.shape());
    return {ga, gb};
  });
}

Variable neg(const Variable& a) {
  return make_result(t::neg(a.data()), "neg", {a},
                     [](const Tensor& g, const Needs&) -> Grads { return {t::neg(g)}; });
}

Variable add_scalar(const Variable& a, double s) {
  return make_result(t::add_scalar(a.data(), s), "add_scalar", {a},
                     [](const Tensor& g, const Needs&) -> Grads { return {g}; });
}

Variable mul_scalar(const Variable& a, double s) {
  return make_result(t::mul_scalar(a.data(), s), "mul_scalar", {a},
                     [s](const Tensor& g, const Needs&) -> Grads { return {t::mul_scalar(g, s)}; });
}

Variable pow_scalar(const Variable& a, double p) {
  Tensor x = a.data();
  return make_result(t::pow_scalar(x, p), "pow_scalar", {a},
                     [x, p](const Tensor& g, const Needs&) -> Grads {
                       return {t::mul(g, t::mul_scalar(t::pow_scalar(x, p - 1), p))};
                     });
}

Variable exp(const Variable& a) {
  Tensor y = t::exp(a.data());
  return make_result(y, "exp", {a},
                     [y](const Tensor& g, const Needs&) -> Grads { return {t::mul(g, y)}; });
}

Variable log(const Variable& a) {
  Tensor x = a.data();
  return make_result(t::log(x), "log", {a},
                     [x](const Tensor& g, const Needs&) -> Grads { return {t::div(g, x)}; });
}

Variable sqrt(const Variable& a) {
  Tensor y = t::sqrt(a.data());
  return make_result(y, "sqrt", {a}, [y](const Tensor& g, const Needs&) -> Grads {
    return {t::div(g, t::mul_scalar(y, 2.0))};
  });
}

Variable tanh(const Variable& a) {
  Tensor y = t::tanh(a.data());
  return make_result(y, "tanh", {a}, [y](const Tensor& g, const Needs&) -> Grads {
    return {t::tanh_backward(g, y)};
  });
}

Variable sigmoid(const Variable& a) {
  Tensor y = t::sigmoid(a.data());
  return make_result(y, "sigmoid", {a}, [y](const Tensor& g, const Needs&) -> Grads {
    return {t::sigmoid_backward(g, y)};
  });
}

Variable relu(const Variable& a) {
  Tensor y = t::relu(a.data());
  return make_result(y, "relu", {a}, [y](const Tensor& g, const Needs&) -> Grads {
    return {t::relu_backward(g, y)};
  });
}

Variable gelu(const Variable& a) {
  Tensor x = a.data();
  return make_result(t::gelu(x), "gelu", {a}, [x](const Tensor& g, const Needs&) -> Grads {
    return {t::gelu_backward(g, x)};
  });
}

Variable matmul(const Variable& a, const Variable& b) {
  Tensor x = a.data(), y = b.data();
  if (x.dim() != y.dim() || (x.dim() != 2 && x.dim() != 3)) {
    throw ShapeError(
        detail::concat("matmul: autograd supports 2-D x 2-D and batched 3-D x 3-D "
                       "operands, got lhs ",
                       shape_str(x.shape()), " and rhs ", shape_str(y.shape())));
  }
  return make_result(
      t::matmul(x, y), "matmul", {a, b}, [x, y](const Tensor& g, const Needs& n) -> Grads {
        // The last two axes transposed: a view BLAS takes as a transposed operand (2-D) or a copy.
        auto swap = [](const Tensor& m) { return m.transpose(m.dim() - 2, m.dim() - 1); };
        return {n[0] ? t::matmul(g, swap(y)) : Tensor(), n[1] ? t::matmul(swap(x), g) : Tensor()};
      });
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  const Tensor& in = x.data();
  const Tensor& w = weight.data();
  if (in.dim() != 2 || w.dim() != 2 || in.size(1) != w.size(1)) {
    throw ShapeError(detail::concat("linear: input ", shape_str(in.shape()), " and weight ",
                                    shape_str(w.shape()), ": expected [N, in] and [out, in]"));
  }
  Tensor out = Tensor::empty({in.size(0), w.size(0)}, in.dtype());
  double beta = 0.0;
  if (bias.defined()) {
    const Tensor& b = bias.data();
    if (b.dim() != 1 || b.size(0) != w.size(0)) {
      throw ShapeError(detail::concat("linear: bias ", shape_str(b.shape()), " must be [",
                                      w.size(0), "] for weight ", shape_str(w.shape())));
    }
    out.copy_from(b);  // broadcast rows, then GEMM accumulates onto them
    beta = 1.0;
  }
  t::matmul_into(in, w.t(), out, 1.0, beta);
  Tensor xs = in, ws = w;
  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return make_result(out, "linear", inputs, [xs, ws](const Tensor& g, const Needs& n) -> Grads {
    Grads grads(n.size());
    if (n[0]) grads[0] = t::matmul(g, ws);
    if (n[1]) grads[1] = t::matmul(g.t(), xs);
    if (n.size() > 2 && n[2]) grads[2] = t::sum(g, {0});
    return grads;
  });
}

Variable sum(const Variable& a, const std::vector<int64_t>& axes, bool keepdim) {
  Shape in_shape = a.shape();
  Tensor kept = t::sum(a.data(), axes, true);
  Shape kept_shape = kept.shape();
  Shape out_shape;
  for (int64_t d = 0; d < a.dim(); ++d) {
    bool reduced = axes.empty() || kept_shape[d] != in_shape[d] ||
                   std::find(axes.begin(), axes.end(), d) != axes.end() ||
                   std::find(axes.begin(), axes.end(), d - a.dim()) != axes.end();
    if (!reduced || keepdim) out_shape.push_back(kept_shape[d]);
  }
  Tensor out = kept.reshape(out_shape);
  return make_result(out, "sum", {a},
                     [in_shape, kept_shape](const Tensor& g, const Needs&) -> Grads {
                       return {g.reshape(kept_shape).expand(in_shape).contiguous()};
                     });
}

Variable mean(const Variable& a, const std::vector<int64_t>& axes, bool keepdim) {
  Variable s = sum(a, axes, keepdim);
  double count = s.numel() == 0 ? 1.0 : static_cast<double>(a.numel()) / s.numel();
  return mul_scalar(s, 1.0 / count);
}

Variable reshape(const Variable& a, const Shape& shape) {
  Shape in_shape = a.shape();
  return make_result(
      a.data().reshape(shape), "reshape", {a},
      [in_shape](const Tensor& g, const Needs&) -> Grads { return {g.reshape(in_shape)}; });
}

Variable transpose(const Variable& a, int64_t axis0, int64_t axis1) {
  return make_result(a.data().transpose(axis0, axis1), "transpose", {a},
                     [axis0, axis1](const Tensor& g, const Needs&) -> Grads {
                       return {g.transpose(axis0, axis1).contiguous()};
                     });
}

Variable slice(const Variable& a, int64_t axis, int64_t start, int64_t end, int64_t step) {
  Tensor out = a.data().slice(axis, start, end, step);
  Shape in_shape = a.shape();
  DType dtype = a.dtype();
  return make_result(
      out, "slice", {a},
      [in_shape, dtype, axis, start, end, step](const Tensor& g, const Needs&) -> Grads {
        Tensor full = Tensor::zeros(in_shape, dtype);
        Tensor view = full.slice(axis, start, end, step);
        view.copy_from(g);
        return {full};
      });
}

Variable softmax(const Variable& a, int64_t axis) {
  Tensor y = t::softmax(a.data(), axis);
  return make_result(y, "softmax", {a}, [y, axis](const Tensor& g, const Needs&) -> Grads {
    return {t::softmax_backward(g, y, axis)};
  });
}

Variable log_softmax(const Variable& a, int64_t axis) {
  Tensor y = t::log_softmax(a.data(), axis);
  return make_result(y, "log_softmax", {a}, [y, axis](const Tensor& g, const Needs&) -> Grads {
    return {t::log_softmax_backward(g, y, axis)};
  });
}

Variable conv2d(const Variable& input, const Variable& weight, const Variable& bias,
                const Conv2dOptions& options) {
  Tensor x = input.data(), w = weight.data();
  Tensor out = t::conv2d(x, w, bias.defined() ? bias.data() : Tensor(), options);
  std::vector<Variable> inputs{input, weight};
  if (bias.defined()) inputs.push_back(bias);
  return make_result(out, "conv2d", inputs,
                     [x, w, options](const Tensor& g, const Needs& n) -> Grads {
                       bool need_bias = n.size() > 2 && n[2];
                       Conv2dGrads cg = t::conv2d_backward(g, x, w, options, n[0], need_bias);
                       Grads grads{cg.input, n[1] ? cg.weight : Tensor()};
                       if (n.size() > 2) grads.push_back(cg.bias);
                       return grads;
                     });
}

Variable max_pool2d(const Variable& input, const Pool2dOptions& options) {
  MaxPoolResult r = t::max_pool2d(input.data(), options);
  Tensor indices = r.indices;
  Shape in_shape = input.shape();
  return make_result(r.output, "max_pool2d", {input},
                     [indices, in_shape](const Tensor& g, const Needs&) -> Grads {
                       return {t::max_pool2d_backward(g, indices, in_shape)};
                     });
}

Variable embedding(const Variable& weight, const Tensor& indices) {
  int64_t rows = weight.size(0);
  return make_result(t::embedding(weight.data(), indices), "embedding", {weight},
                     [indices, rows](const Tensor& g, const Needs&) -> Grads {
                       return {t::embedding_backward(g, indices, rows)};
                     });
}

Variable dropout(const Variable& a, double p, Generator& gen, int shard_index, int shard_count) {
  if (p < 0.0 || p >= 1.0) {
    throw ValueError(detail::concat("dropout: probability ", p, " must lie in [0, 1)"));
  }
  if (shard_count < 1 || shard_index < 0 || shard_index >= shard_count) {
    throw ValueError(detail::concat("dropout: shard ", shard_index, " of ", shard_count,
                                    " is not one of 0 .. count - 1"));
  }
  if (p == 0.0) return a;
  Tensor mask = Tensor::empty(a.shape(), a.dtype());
  const int64_t rows = a.dim() == 0 ? 1 : a.shape()[0];
  const int64_t row_size = rows == 0 ? 0 : mask.numel() / rows;
  TESSERA_DISPATCH_FLOATING(a.dtype(), "dropout", [&] {
    scalar_t* m = mask.data<scalar_t>();
    const auto keep = static_cast<scalar_t>(1.0 / (1.0 - p));
    // Row g of the whole batch is row g / count of this shard when g % count == index; the
    // other shards' rows are drawn and dropped, so every shard's stream stays in step.
    for (int64_t g = 0; g < rows * shard_count; ++g) {
      scalar_t* row = g % shard_count == shard_index ? m + (g / shard_count) * row_size : nullptr;
      for (int64_t i = 0; i < row_size; ++i) {
        const bool drop = gen.uniform() < p;
        if (row != nullptr) row[i] = drop ? scalar_t(0) : keep;
      }
    }
  });
  return make_result(t::mul(a.data(), mask), "dropout", {a},
                     [mask](const Tensor& g, const Needs&) -> Grads { return {t::mul(g, mask)}; });
}

Variable cross_entropy(const Variable& logits, const Tensor& labels, double label_smoothing) {
  CrossEntropyResult r = t::softmax_cross_entropy(logits.data(), labels, label_smoothing);
  Tensor probs = r.probs;
  return make_result(
      r.loss, "cross_entropy", {logits},
      [probs, labels, label_smoothing](const Tensor& g, const Needs&) -> Grads {
        return {t::softmax_cross_entropy_backward(g, probs, labels, label_smoothing)};
      });
}

Variable mse_loss(const Variable& input, const Variable& target) {
  if (input.shape() != target.shape()) {
    throw ShapeError(detail::concat("mse_loss: input ", shape_str(input.shape()), " and target ",
                                    shape_str(target.shape()), " differ"));
  }
  Variable d = sub(input, target);
  return mean(mul(d, d));
}

Variable binary_cross_entropy_with_logits(const Variable& logits, const Variable& target) {
  if (logits.shape() != target.shape()) {
    throw ShapeError(detail::concat("binary_cross_entropy_with_logits: logits ",
                                    shape_str(logits.shape()), " and target ",
                                    shape_str(target.shape()), " differ"));
  }
  Tensor x = logits.data(), y = target.data();
  // loss_i = softplus(x) - x*y; d/dx = sigmoid(x) - y; d/dy = -x.
  Tensor loss = t::mean(t::sub(t::softplus(x), t::mul(x, y)));
  double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(x.numel(), 1));
  return make_result(loss, "binary_cross_entropy_with_logits", {logits, target},
                     [x, y, inv_n](const Tensor& g, const Needs& n) -> Grads {
                       double s = g.item() * inv_n;
                       Tensor gx, gy;
                       if (n[0]) gx = t::mul_scalar(t::sub(t::sigmoid(x), y), s);
                       if (n[1]) gy = t::mul_scalar(x, -s);
                       return {gx, gy};
                     });
}

}  // namespace tessera::autograd

namespace tessera::autograd {

namespace {

// Layer normalisation of rows of `features`, fused: one pass computes each row's mean and
// 1/sqrt(var + eps), a second the output; x_hat and rstd are kept for the backward. (As a chain
// of elementwise ops it cost a transformer more than its attention.)
template <typename T>
void layer_norm_rows(const T* x, const T* w, const T* b, T* y, T* xhat, T* rstd, int64_t rows,
                     int64_t features, double eps) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / features), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * features;
      double sum = 0.0;
      for (int64_t i = 0; i < features; ++i) sum += xr[i];
      const double mean = sum / static_cast<double>(features);
      double squares = 0.0;
      for (int64_t i = 0; i < features; ++i) {
        const double c = xr[i] - mean;
        squares += c * c;
      }
      const auto inv =
          static_cast<T>(1.0 / std::sqrt(squares / static_cast<double>(features) + eps));
      rstd[r] = inv;
      T* hr = xhat + r * features;
      T* yr = y + r * features;
      const auto m = static_cast<T>(mean);
      for (int64_t i = 0; i < features; ++i) {
        hr[i] = (xr[i] - m) * inv;
        yr[i] = hr[i] * w[i] + b[i];
      }
    }
  });
}

// dx = rstd * (g w - mean(g w) - x_hat * mean(g w x_hat)) per row; dw, db summed over rows.
template <typename T>
void layer_norm_backward_rows(const T* g, const T* xhat, const T* rstd, const T* w, T* dx, T* dw,
                              T* db, int64_t rows, int64_t features) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / features), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* gr = g + r * features;
      const T* hr = xhat + r * features;
      double a = 0.0, c = 0.0;
      for (int64_t i = 0; i < features; ++i) {
        const double gw = static_cast<double>(gr[i]) * w[i];
        a += gw;
        c += gw * hr[i];
      }
      const auto mean_a = static_cast<T>(a / static_cast<double>(features));
      const auto mean_c = static_cast<T>(c / static_cast<double>(features));
      T* dr = dx + r * features;
      for (int64_t i = 0; i < features; ++i) {
        dr[i] = rstd[r] * (gr[i] * w[i] - mean_a - hr[i] * mean_c);
      }
    }
  });
  // Column sums in row order, on one thread: the same bits on any number of threads.
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * features;
    const T* hr = xhat + r * features;
    for (int64_t i = 0; i < features; ++i) {
      dw[i] += gr[i] * hr[i];
      db[i] += gr[i];
    }
  }
}

}  // namespace

Variable layer_norm(const Variable& x, const Variable& weight, const Variable& bias, double eps) {
  if (x.dim() < 1 || weight.dim() != 1 || bias.dim() != 1 || x.size(-1) != weight.size(0) ||
      bias.size(0) != weight.size(0) || x.dtype() != weight.dtype() || x.dtype() != bias.dtype()) {
    throw ShapeError(detail::concat(
        "layer_norm: input ", shape_str(x.shape()), ", weight ", shape_str(weight.shape()),
        " and bias ", shape_str(bias.shape()), ": expected [..., F], [F], [F] of one dtype"));
  }
  const Tensor in = x.data().contiguous();
  const Tensor w = weight.data().contiguous();
  const Tensor b = bias.data().contiguous();
  const int64_t features = w.numel();
  const int64_t rows = features == 0 ? 0 : in.numel() / features;
  Tensor y = Tensor::empty(in.shape(), in.dtype());
  Tensor xhat = Tensor::empty(in.shape(), in.dtype());
  Tensor rstd = Tensor::empty({rows}, in.dtype());
  TESSERA_DISPATCH_FLOATING(in.dtype(), "layer_norm", [&] {
    layer_norm_rows(in.data<scalar_t>(), w.data<scalar_t>(), b.data<scalar_t>(), y.data<scalar_t>(),
                    xhat.data<scalar_t>(), rstd.data<scalar_t>(), rows, features, eps);
  });
  return make_result(y, "layer_norm", {x, weight, bias},
                     [xhat, rstd, w, rows, features](const Tensor& grad, const Needs&) -> Grads {
                       const Tensor g = grad.contiguous();
                       Tensor dx = Tensor::empty(xhat.shape(), xhat.dtype());
                       Tensor dw = Tensor::zeros({features}, xhat.dtype());
                       Tensor db = Tensor::zeros({features}, xhat.dtype());
                       TESSERA_DISPATCH_FLOATING(xhat.dtype(), "layer_norm_backward", [&] {
                         layer_norm_backward_rows(g.data<scalar_t>(), xhat.data<scalar_t>(),
                                                  rstd.data<scalar_t>(), w.data<scalar_t>(),
                                                  dx.data<scalar_t>(), dw.data<scalar_t>(),
                                                  db.data<scalar_t>(), rows, features);
                       });
                       return {dx, dw, db};
                     });
}

Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias,
                    Tensor running_mean, Tensor running_var, bool training, double momentum,
                    double eps, const BatchStatsReduction* across) {
  const int64_t channels = weight.numel();
  if ((x.dim() != 2 && x.dim() != 4) || x.size(1) != channels || bias.numel() != channels) {
    throw ShapeError(detail::concat("batch_norm: input ", shape_str(x.shape()), ", weight ",
                                    shape_str(weight.shape()), " and bias ",
                                    shape_str(bias.shape()),
                                    ": expected [N, C] or [N, C, H, W] with [C] weight and bias"));
  }
  Shape channel_shape(x.dim(), 1);
  channel_shape[1] = channels;
  std::vector<int64_t> axes =
      x.dim() == 2 ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 2, 3};
  Variable w = reshape(weight, channel_shape);
  Variable b = reshape(bias, channel_shape);
  if (!training) {
    if (!running_mean.defined() || !running_var.defined()) {
      throw ValueError("batch_norm: evaluation mode needs running statistics");
    }
    Variable mu(running_mean.reshape(channel_shape));
    Variable inv_std(t::div(Tensor::ones(channel_shape, x.dtype()),
                            t::sqrt(t::add_scalar(running_var.reshape(channel_shape), eps))));
    return add(mul(mul(sub(x, mu), inv_std), w), b);
  }
  const int64_t local_count = x.numel() / channels;
  const int64_t count = across ? across->count(local_count) : local_count;
  if (count < 2) {
    throw ShapeError(detail::concat(
        "batch_norm: training needs more than one value per channel, got ", shape_str(x.shape()),
        across ? detail::concat(" (", count, " values over every process)") : ""));
  }
  // Over several processes: sums of this batch, summed over all, divided by the total count.
  auto batch_mean = [&](const Variable& v) {
    return across ? mul_scalar(across->sum(sum(v, axes, true)), 1.0 / static_cast<double>(count))
                  : mean(v, axes, true);
  };
  Variable mu = batch_mean(x);
  Variable centered = sub(x, mu);
  Variable var = batch_mean(mul(centered, centered));
  if (running_mean.defined() && running_var.defined()) {
    Tensor batch_mean = mu.data().reshape({channels});
    Tensor unbiased = t::mul_scalar(var.data().reshape({channels}),
                                    static_cast<double>(count) / static_cast<double>(count - 1));
    running_mean.copy_from(
        t::add(t::mul_scalar(running_mean, 1.0 - momentum), t::mul_scalar(batch_mean, momentum)));
    running_var.copy_from(
        t::add(t::mul_scalar(running_var, 1.0 - momentum), t::mul_scalar(unbiased, momentum)));
  }
  return add(mul(div(centered, sqrt(add_scalar(var, eps))), w), b);
}

}  // namespace tessera::autograd
