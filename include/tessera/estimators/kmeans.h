#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

struct KMeansOptions {
  int64_t clusters = 8;
  int64_t max_iterations = 300;
  // Converged when the centers' squared moves in one iteration sum to at most tol times the
  // features' mean variance (scikit-learn's test), or when no row changed its cluster.
  double tol = 1e-4;
  uint64_t seed = 0;
  // k-means|| (Bahmani et al.): rounds of sampling rows, each about oversampling x clusters of
  // them, before the candidates are reduced to `clusters` centers.
  int64_t init_rounds = 2;
  double oversampling = 2.0;
  // Called after each Lloyd iteration with its number (from 1) and the inertia of the centers
  // it started from.
  std::function<void(int64_t iteration, double inertia)> on_iteration;
};

// Cluster centers: a row belongs to the nearest (squared Euclidean distance).
struct KMeansModel {
  int64_t features = 0;
  int64_t clusters = 0;
  std::vector<float> centers;  // [clusters, features], row-major

  // The nearest center of each row of x (float32 [rows, features]) and its squared distance.
  void assign(const Tensor& x, std::span<int64_t> labels, std::span<double> distances) const;

  // The model's bytes, and back (kmeans.cc); read() throws FormatError naming the reader's source
  // for counts that disagree or bytes that run out.
  void write(BinaryWriter& out) const;
  [[nodiscard]] static KMeansModel read(BinaryReader& in);
};

struct KMeansFit {
  KMeansModel model;
  int64_t rows = 0;        // over all processes
  int64_t iterations = 0;  // Lloyd iterations
  int64_t candidates = 0;  // rows k-means|| sampled
  bool converged = false;
  std::string stop;  // why it stopped
};

// Fits k-means on every process at once, from k-means|| centers, by Lloyd iterations: each pass
// over a process's rows assigns them and sums them per cluster, and one allreduce combines the
// sums, so every process computes the same centers. Which rows k-means|| samples depends on the
// seed and each row's place in the table, not on the processes: P processes fit one process's
// model (up to the order of the sums). A cluster left empty keeps its center. Throws ValueError
// for bad options, fewer distinct rows than clusters, or a process without rows.
[[nodiscard]] KMeansFit fit_kmeans(RowSource& rows, comm::ProcessGroup* group,
                                   const KMeansOptions& options);

// The within-cluster sum of squares of rows (summed over `group`, every process gets it).
struct KMeansScore {
  int64_t rows = 0;
  double inertia = 0.0;
};
[[nodiscard]] KMeansScore score_kmeans(const KMeansModel& model, RowSource& rows,
                                       comm::ProcessGroup* group);

}  // namespace tessera::estimators
