#include "tessera/nn/init.h"

#include <cmath>

namespace tessera::nn::init {

int64_t fan_in(const Tensor& t) {
  if (t.dim() < 2) throw ShapeError("init: fan_in needs at least 2-D, got " + shape_str(t.shape()));
  return t.numel() / t.size(0);
}

int64_t fan_out(const Tensor& t) {
  if (t.dim() < 2)
    throw ShapeError("init: fan_out needs at least 2-D, got " + shape_str(t.shape()));
  return t.numel() / t.size(1);
}

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  t.copy_from(Tensor::rand(t.shape(), gen, low, high, DType::kFloat64));
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  Tensor n = Tensor::randn(t.shape(), gen, DType::kFloat64);
  double* p = n.data<double>();
  for (int64_t i = 0; i < n.numel(); ++i) p[i] = mean + std * p[i];
  t.copy_from(n);
}

void kaiming_uniform_(Tensor& t, double a, Generator& gen) {
  double bound = std::sqrt(6.0 / ((1.0 + a * a) * static_cast<double>(fan_in(t))));
  uniform_(t, -bound, bound, gen);
}

void xavier_uniform_(Tensor& t, double gain, Generator& gen) {
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in(t) + fan_out(t)));
  uniform_(t, -bound, bound, gen);
}

}  // namespace tessera::nn::init
