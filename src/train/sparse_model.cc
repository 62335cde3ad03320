#include "sparse_model.h"

#include <cmath>
#include <vector>

namespace tessera::train {
namespace {

// Feature ids with structure (consecutive, one field per high bits) must still spread over the
// rows.
uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

}  // namespace

SparseModel::SparseModel(const ModelConfig& config)
    : dim_(config.type == "fm" ? 1 + config.factors : 1),
      factors_(dim_ - 1),
      hash_rows_(config.hash_rows),
      sums_(static_cast<size_t>(factors_)) {}

uint64_t SparseModel::key_of(int64_t feature) const {
  return mix64(static_cast<uint64_t>(feature)) % static_cast<uint64_t>(hash_rows_);
}

void SparseModel::factor_sums(std::span<const float> rows, std::span<const float> values) const {
  std::fill(sums_.begin(), sums_.end(), 0.0);
  for (size_t j = 0; j < values.size(); ++j) {
    const float* v = rows.data() + (j + 1) * dim_ + 1;
    for (int64_t f = 0; f < factors_; ++f) sums_[f] += static_cast<double>(v[f]) * values[j];
  }
}

double SparseModel::logit(std::span<const float> rows, std::span<const float> values) const {
  double z = rows[0];
  for (size_t j = 0; j < values.size(); ++j)
    z += static_cast<double>(rows[(j + 1) * dim_]) * values[j];
  if (factors_ == 0) return z;
  // The pairwise term sum_{i<j} <v_i, v_j> x_i x_j, as half of (sum v x)^2 - sum (v x)^2.
  factor_sums(rows, values);
  double pairs = 0.0;
  for (int64_t f = 0; f < factors_; ++f) pairs += sums_[f] * sums_[f];
  for (size_t j = 0; j < values.size(); ++j) {
    const float* v = rows.data() + (j + 1) * dim_ + 1;
    for (int64_t f = 0; f < factors_; ++f) {
      const double vx = static_cast<double>(v[f]) * values[j];
      pairs -= vx * vx;
    }
  }
  return z + 0.5 * pairs;
}

double SparseModel::backward(std::span<const float> rows, std::span<const float> values,
                             float label, float scale, std::span<float> grads) const {
  const double z = logit(rows, values);  // leaves sums_ for this record
  const double dz = (sigmoid(z) - label) * scale;
  grads[0] += static_cast<float>(dz);
  for (size_t j = 0; j < values.size(); ++j) {
    const double x = values[j];
    float* g = grads.data() + (j + 1) * dim_;
    g[0] += static_cast<float>(dz * x);
    const float* v = rows.data() + (j + 1) * dim_ + 1;
    for (int64_t f = 0; f < factors_; ++f) {
      g[1 + f] += static_cast<float>(dz * x * (sums_[f] - v[f] * x));
    }
  }
  return log_loss(z, label);
}

double sigmoid(double logit) {
  return logit >= 0 ? 1.0 / (1.0 + std::exp(-logit)) : std::exp(logit) / (1.0 + std::exp(logit));
}

double log_loss(double logit, float label) {
  const double softplus =
      logit > 0 ? logit + std::log1p(std::exp(-logit)) : std::log1p(std::exp(logit));
  return softplus - label * logit;
}

}  // namespace tessera::train
