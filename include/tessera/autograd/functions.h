#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/core/random.h"
#include "tessera/tensor/conv.h"

namespace tessera::autograd {

// Differentiable operations. Each computes with the tensor kernels and, when grad mode is on and
// an input requires grad, records a Node whose backward gives that input's gradient. Errors
// (shapes, dtypes, indices) are the kernels' and name the op and shapes.

Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable neg(const Variable& a);
Variable add_scalar(const Variable& a, double s);
Variable mul_scalar(const Variable& a, double s);
Variable pow_scalar(const Variable& a, double p);
Variable exp(const Variable& a);
Variable log(const Variable& a);
Variable sqrt(const Variable& a);
Variable tanh(const Variable& a);
Variable sigmoid(const Variable& a);
Variable relu(const Variable& a);
Variable gelu(const Variable& a);

// 2-D x 2-D, or batched: [N, n, k] x [N, k, m] -> [N, n, m].
Variable matmul(const Variable& a, const Variable& b);
// x [N, in] @ weight[out, in]^T + bias[out]; bias may be undefined.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);

Variable sum(const Variable& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Variable mean(const Variable& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);

Variable reshape(const Variable& a, const Shape& shape);
Variable transpose(const Variable& a, int64_t axis0, int64_t axis1);
Variable slice(const Variable& a, int64_t axis, int64_t start, int64_t end, int64_t step = 1);

Variable softmax(const Variable& a, int64_t axis);
Variable log_softmax(const Variable& a, int64_t axis);

Variable conv2d(const Variable& input, const Variable& weight, const Variable& bias,
                const Conv2dOptions& options = {});
Variable max_pool2d(const Variable& input, const Pool2dOptions& options = {});
Variable embedding(const Variable& weight, const Tensor& indices);
// Zeroes each element with probability p and scales the rest by 1/(1-p) (identity when p == 0).
// With shard_count > 1, `a` holds rows shard_index, shard_index + shard_count, ... of a batch
// shard_count times longer: the mask is drawn for that batch, row by row, and those rows kept.
Variable dropout(const Variable& a, double p, Generator& gen, int shard_index = 0,
                 int shard_count = 1);

// Mean softmax cross-entropy of logits [N, C] against int labels [N].
Variable cross_entropy(const Variable& logits, const Tensor& labels, double label_smoothing = 0.0);
Variable mse_loss(const Variable& input, const Variable& target);
// Mean of max(x,0) - x*y + log(1 + exp(-|x|)), stable for any logit.
Variable binary_cross_entropy_with_logits(const Variable& logits, const Variable& target);

// Normalises over the last axis, then scales by weight and shifts by bias (each [last]); as
// torch.nn.functional.layer_norm over one axis.
Variable layer_norm(const Variable& x, const Variable& weight, const Variable& bias, double eps);
// How batch_norm's statistics take in the batches of other processes that normalise together
// (synchronised batch normalisation): `sum` returns the sum over all of them of a per-channel
// tensor (differentiably: its backward sums the gradients likewise), `count` the total of a value
// count. Unset, the statistics are this batch's alone.
struct BatchStatsReduction {
  std::function<Variable(const Variable&)> sum;
  std::function<int64_t(int64_t)> count;
};

// Batch normalisation over axis 1 of [N, C] or [N, C, H, W]; weight and bias are [C]. In training
// it normalises with the batch statistics (biased variance) and, when running_mean/running_var are
// defined, updates them in place: r = (1 - momentum) r + momentum * batch (unbiased variance).
// With `across`, the batch is that of every process `across` reduces over. Otherwise it
// normalises with the running statistics.
Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias,
                    Tensor running_mean, Tensor running_var, bool training, double momentum,
                    double eps, const BatchStatsReduction* across = nullptr);

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }

}  // namespace tessera::autograd
