#pragma once

#include <cstdint>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// Principal components: the directions of the rows' largest variance around their mean.
struct PcaModel {
  int64_t features = 0;
  int64_t components = 0;
  std::vector<double> mean;       // [features]
  std::vector<double> axes;       // [components, features], orthonormal rows, largest first
  std::vector<double> variances;  // each component's variance (divided by rows - 1)
  double total_variance = 0.0;    // the sum of every feature's variance

  // The rows' coordinates along the axes: (x - mean) axes^T, [rows, components] row-major.
  [[nodiscard]] std::vector<double> transform(const Tensor& x) const;

  void write(BinaryWriter& out) const;
  [[nodiscard]] static PcaModel read(BinaryReader& in);
};

// One pass over every process's rows gives the sums of the rows and of their outer products
// (x^T x, one product per block), summed by one allreduce; the covariance's top eigenvectors
// (LAPACK's dsyevr) are the axes, each signed so that its largest entry is positive. Every process
// gets one process's model. Throws ValueError for components outside [1, features], fewer than 2
// rows or a process without rows.
[[nodiscard]] PcaModel fit_pca(RowSource& rows, comm::ProcessGroup* group, int64_t components);

// The share of the rows' variance around the model's mean that its components keep (1: all),
// summed over `group`.
[[nodiscard]] double explained_variance(const PcaModel& model, RowSource& rows,
                                        comm::ProcessGroup* group);

}  // namespace tessera::estimators
