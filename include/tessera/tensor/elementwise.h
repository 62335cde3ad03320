#pragma once

#include "tessera/tensor/tensor.h"

namespace tessera {

// Elementwise arithmetic with numpy broadcasting. Operands must share a floating dtype (float32 or
// float64); mismatches throw DTypeError, incompatible shapes ShapeError, naming op and shapes.
// Results are new contiguous tensors.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
// 1.0 where a > b, else 0.0 (broadcasting); the mask max/relu gradients use.
Tensor greater(const Tensor& a, const Tensor& b);

Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
// a ** p.
Tensor pow_scalar(const Tensor& a, double p);

Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
// Exact GELU, x * Phi(x) (PyTorch's default).
Tensor gelu(const Tensor& a);
// log(1 + exp(a)) computed without overflow.
Tensor softplus(const Tensor& a);

// Gradients of the unary ops above, from the upstream gradient and what forward saw.
Tensor relu_backward(const Tensor& grad, const Tensor& output);
Tensor tanh_backward(const Tensor& grad, const Tensor& output);
Tensor sigmoid_backward(const Tensor& grad, const Tensor& output);
Tensor gelu_backward(const Tensor& grad, const Tensor& input);

// In place: y += alpha * x (same shape and dtype; y contiguous).
void axpy_(Tensor& y, double alpha, const Tensor& x);
// In place: y *= alpha.
void scale_(Tensor& y, double alpha);

}  // namespace tessera
