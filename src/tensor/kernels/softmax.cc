#include "tessera/tensor/softmax.h"

#include <algorithm>
#include <cmath>

#include "tessera/core/thread_pool.h"

namespace tessera {
namespace {

// Moves axis last (contiguous); `restore` undoes it on a result of the same layout.
struct LastAxis {
  Tensor rows;
  std::vector<int64_t> order;
  int64_t axis;
};

LastAxis move_last(const Tensor& a, int64_t axis, const char* op) {
  int64_t ax = normalize_axis(axis, a.dim(), op);
  std::vector<int64_t> order;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (d != ax) order.push_back(d);
  }
  order.push_back(ax);
  return {a.permute(order).contiguous(), order, ax};
}

Tensor restore(const Tensor& rows, const LastAxis& l) {
  std::vector<int64_t> inverse(l.order.size());
  for (size_t i = 0; i < l.order.size(); ++i) inverse[l.order[i]] = static_cast<int64_t>(i);
  return rows.permute(inverse).contiguous();
}

template <typename T, bool kLog>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t cols) {
  parallel_for(rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T mx = *std::max_element(xr, xr + cols);
      T total = 0;
      for (int64_t c = 0; c < cols; ++c) {
        T e = std::exp(xr[c] - mx);
        total += e;
        if (!kLog) yr[c] = e;
      }
      if (kLog) {
        // (x - max) - log(total), not x - (max + log(total)): the latter rounds
        // log(total) to the precision of |max| and loses digits for large logits.
        T log_total = std::log(total);
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mx) - log_total;
      } else {
        T inv = T(1) / total;
        for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
      }
    }
  });
}

template <bool kLog>
Tensor softmax_impl(const Tensor& a, int64_t axis, const char* op) {
  if (a.dim() == 0) throw ShapeError(detail::concat(op, ": expected at least 1-D, got []"));
  LastAxis l = move_last(a, axis, op);
  Tensor out = Tensor::empty(l.rows.shape(), a.dtype());
  int64_t cols = l.rows.size(-1);
  int64_t rows = cols == 0 ? 0 : l.rows.numel() / cols;
  TESSERA_DISPATCH_FLOATING(a.dtype(), op, [&] {
    softmax_rows<scalar_t, kLog>(l.rows.data<scalar_t>(), out.data<scalar_t>(), rows, cols);
  });
  return restore(out, l);
}

template <bool kLog>
Tensor softmax_backward_impl(const Tensor& grad, const Tensor& output, int64_t axis,
                             const char* op) {
  if (grad.shape() != output.shape()) {
    throw ShapeError(detail::concat(op, ": grad ", shape_str(grad.shape()), " and output ",
                                    shape_str(output.shape()), " differ"));
  }
  LastAxis lg = move_last(grad, axis, op);
  LastAxis ly = move_last(output, axis, op);
  Tensor out = Tensor::empty(lg.rows.shape(), grad.dtype());
  int64_t cols = lg.rows.size(-1);
  int64_t rows = cols == 0 ? 0 : lg.rows.numel() / cols;
  TESSERA_DISPATCH_FLOATING(grad.dtype(), op, [&] {
    const scalar_t* g = lg.rows.data<scalar_t>();
    const scalar_t* y = ly.rows.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* gr = g + r * cols;
      const scalar_t* yr = y + r * cols;
      scalar_t* orow = o + r * cols;
      scalar_t dot = 0;
      if (kLog) {
        for (int64_t c = 0; c < cols; ++c) dot += gr[c];
        for (int64_t c = 0; c < cols; ++c) orow[c] = gr[c] - std::exp(yr[c]) * dot;
      } else {
        for (int64_t c = 0; c < cols; ++c) dot += gr[c] * yr[c];
        for (int64_t c = 0; c < cols; ++c) orow[c] = yr[c] * (gr[c] - dot);
      }
    }
  });
  return restore(out, lg);
}

void check_cross_entropy(const Tensor& logits, const Tensor& labels, double smoothing) {
  if (logits.dim() != 2 || labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    throw ShapeError(detail::concat("cross_entropy: logits ", shape_str(logits.shape()),
                                    " must be [N, C] and labels ", shape_str(labels.shape()),
                                    " [N]"));
  }
  if (smoothing < 0.0 || smoothing > 1.0) {
    throw ValueError(
        detail::concat("cross_entropy: label_smoothing ", smoothing, " must lie in [0, 1]"));
  }
}

// Reads label n as int64 and checks its range.
template <typename I>
int64_t label_at(const I* labels, int64_t n, int64_t classes) {
  int64_t y = static_cast<int64_t>(labels[n]);
  if (y < 0 || y >= classes) {
    throw IndexError(detail::concat("cross_entropy: label ", y, " at row ", n, " out of range for ",
                                    classes, " classes"));
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t axis) { return softmax_impl<false>(a, axis, "softmax"); }
Tensor log_softmax(const Tensor& a, int64_t axis) {
  return softmax_impl<true>(a, axis, "log_softmax");
}
Tensor softmax_backward(const Tensor& grad, const Tensor& output, int64_t axis) {
  return softmax_backward_impl<false>(grad, output, axis, "softmax_backward");
}
Tensor log_softmax_backward(const Tensor& grad, const Tensor& output, int64_t axis) {
  return softmax_backward_impl<true>(grad, output, axis, "log_softmax_backward");
}

CrossEntropyResult softmax_cross_entropy(const Tensor& logits, const Tensor& labels,
                                         double label_smoothing) {
  check_cross_entropy(logits, labels, label_smoothing);
  Tensor x = logits.contiguous();
  Tensor lab = labels.contiguous();
  const int64_t n = x.size(0);
  const int64_t c = x.size(1);
  CrossEntropyResult result{Tensor::empty({}, x.dtype()), Tensor::empty({n, c}, x.dtype())};
  TESSERA_DISPATCH_FLOATING(x.dtype(), "cross_entropy", [&] {
    TESSERA_DISPATCH_INDEX(lab.dtype(), "cross_entropy", [&] {
      const scalar_t* px = x.data<scalar_t>();
      const index_t* py = lab.data<index_t>();
      scalar_t* probs = result.probs.data<scalar_t>();
      double total = 0.0;
      for (int64_t r = 0; r < n; ++r) {
        const scalar_t* row = px + r * c;
        scalar_t* prow = probs + r * c;
        int64_t y = label_at(py, r, c);
        scalar_t mx = *std::max_element(row, row + c);
        scalar_t sum_exp = 0;
        double sum_shifted = 0.0;  // sum of (x - max), in double
        for (int64_t k = 0; k < c; ++k) {
          scalar_t e = std::exp(row[k] - mx);
          prow[k] = e;
          sum_exp += e;
          sum_shifted += static_cast<double>(row[k] - mx);
        }
        scalar_t inv = scalar_t(1) / sum_exp;
        for (int64_t k = 0; k < c; ++k) prow[k] *= inv;
        // -log p_k = log(sum_exp) - (x_k - max); kept relative to the max so that large logits
        // do not round log(sum_exp) away.
        const double log_sum = std::log(static_cast<double>(sum_exp));
        double nll = log_sum - static_cast<double>(row[y] - mx);
        double smooth = log_sum - sum_shifted / static_cast<double>(c);  // mean over k of -log p_k
        total += (1.0 - label_smoothing) * nll + label_smoothing * smooth;
      }
      *result.loss.data<scalar_t>() = static_cast<scalar_t>(n > 0 ? total / n : 0.0);
    });
  });
  return result;
}

Tensor softmax_cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& labels,
                                      double label_smoothing) {
  check_cross_entropy(probs, labels, label_smoothing);
  Tensor lab = labels.contiguous();
  Tensor pc = probs.contiguous();
  const int64_t n = probs.size(0);
  const int64_t c = probs.size(1);
  Tensor out = Tensor::empty({n, c}, probs.dtype());
  TESSERA_DISPATCH_FLOATING(probs.dtype(), "cross_entropy_backward", [&] {
    TESSERA_DISPATCH_INDEX(lab.dtype(), "cross_entropy_backward", [&] {
      const scalar_t* p = pc.data<scalar_t>();
      const index_t* py = lab.data<index_t>();
      scalar_t* o = out.data<scalar_t>();
      const scalar_t scale = static_cast<scalar_t>(grad.item() / std::max<int64_t>(n, 1));
      const scalar_t off = static_cast<scalar_t>(label_smoothing / static_cast<double>(c));
      const scalar_t on = static_cast<scalar_t>(1.0 - label_smoothing);
      for (int64_t r = 0; r < n; ++r) {
        int64_t y = label_at(py, r, c);
        for (int64_t k = 0; k < c; ++k) o[r * c + k] = (p[r * c + k] - off) * scale;
        o[r * c + y] -= on * scale;
      }
    });
  });
  return out;
}

}  // namespace tessera
