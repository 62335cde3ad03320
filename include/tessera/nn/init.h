#pragma once

#include "tessera/core/random.h"
#include "tessera/tensor/tensor.h"

namespace tessera::nn::init {

// In-place initialisers, as torch.nn.init defines them. fan_in is the product of every dimension
// but the first (out_features, or out_channels); fan_out of every dimension but the second.
void uniform_(Tensor& t, double low, double high, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
// Kaiming (He) uniform with leaky-ReLU slope a: bound = sqrt(6 / ((1 + a^2) fan_in)).
// a = sqrt(5) is PyTorch's default for Linear and Conv weights (bound = 1/sqrt(fan_in)).
void kaiming_uniform_(Tensor& t, double a, Generator& gen);
// Xavier (Glorot) uniform: bound = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain, Generator& gen);
int64_t fan_in(const Tensor& t);
int64_t fan_out(const Tensor& t);

}  // namespace tessera::nn::init
