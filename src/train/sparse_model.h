#pragma once

#include <cstdint>
#include <span>

#include "tessera/train/config.h"

// The math of the sparse models ([model] type "logistic" and "fm") on the rows a worker pulled for
// one record: its bias row, then one row per feature. A row holds the feature's weight and, for a
// factorization machine, its `factors` factors after it.
namespace tessera::train {

class SparseModel {
 public:
  explicit SparseModel(const ModelConfig& config);

  // Floats per row: 1, or 1 + factors.
  [[nodiscard]] int64_t dim() const { return dim_; }
  // The table's key of a feature (hashed into hash_rows rows) and of the bias (the row after them).
  [[nodiscard]] uint64_t key_of(int64_t feature) const;
  [[nodiscard]] uint64_t bias_key() const { return static_cast<uint64_t>(hash_rows_); }

  // The logit of a record with feature values `values`; rows holds 1 + values.size() rows.
  [[nodiscard]] double logit(std::span<const float> rows, std::span<const float> values) const;
  // Log loss of the record with `label` (0 or 1); adds scale * its gradient to `grads` (laid out
  // as rows). Returns the loss.
  double backward(std::span<const float> rows, std::span<const float> values, float label,
                  float scale, std::span<float> grads) const;

 private:
  // Per factor, the sum over the record's features of factor * value.
  void factor_sums(std::span<const float> rows, std::span<const float> values) const;

  int64_t dim_;
  int64_t factors_;
  int64_t hash_rows_;
  mutable std::vector<double> sums_;
};

// log(1 + e^z) - label * z, without overflow.
[[nodiscard]] double log_loss(double logit, float label);
[[nodiscard]] double sigmoid(double logit);

}  // namespace tessera::train
