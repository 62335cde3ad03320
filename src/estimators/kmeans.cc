#include "tessera/estimators/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "collective.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/tensor/matmul.h"

namespace tessera::estimators {
namespace {

// k-means|| samples at most this many rounds beyond init_rounds while it holds fewer candidates
// than clusters.
constexpr int64_t kExtraInitRounds = 10;
// Lloyd iterations at most when the candidates are reduced to the centers.
constexpr int64_t kCandidateIterations = 100;
constexpr uint32_t kKMeansVersion = 1;
constexpr int64_t kMaxKMeansFeatures = int64_t{1} << 32;
constexpr int64_t kMaxClusters = int64_t{1} << 20;

// Centers ready for distances: |x - c|^2 = |x|^2 + (|c|^2 - 2 x.c), the bracket for every row of
// a block by one matrix product.
class Centers {
 public:
  Centers(const std::vector<float>& centers, int64_t features)
      : count_(static_cast<int64_t>(centers.size()) / features),
        centers_(Tensor::from_vector(centers, {count_, features})),
        norms_(static_cast<size_t>(count_)) {
    for (int64_t j = 0; j < count_; ++j) {
      double s = 0.0;
      for (int64_t f = 0; f < features; ++f) {
        const double v = centers[static_cast<size_t>(j * features + f)];
        s += v * v;
      }
      norms_[static_cast<size_t>(j)] = s;
    }
  }

  [[nodiscard]] int64_t count() const { return count_; }

  // For each row r of x: the center j with the least |c_j|^2 - 2 x_r.c_j, and that value.
  void nearest(const Tensor& x, std::span<int32_t> index, std::span<double> partial) const {
    const int64_t n = x.size(0);
    Tensor products = Tensor::empty({n, count_});
    matmul_into(x, centers_.t(), products);
    const float* p = products.data<float>();
    for (int64_t r = 0; r < n; ++r) {
      double best = std::numeric_limits<double>::infinity();
      int32_t at = 0;
      for (int64_t j = 0; j < count_; ++j) {
        const double v = norms_[static_cast<size_t>(j)] - 2.0 * p[r * count_ + j];
        if (v < best) best = v, at = static_cast<int32_t>(j);
      }
      index[static_cast<size_t>(r)] = at;
      partial[static_cast<size_t>(r)] = best;
    }
  }

 private:
  int64_t count_;
  Tensor centers_;
  std::vector<double> norms_;
};

double squared_norm(const float* row, int64_t d) {
  double s = 0.0;
  for (int64_t f = 0; f < d; ++f) s += static_cast<double>(row[f]) * row[f];
  return s;
}

void check_options(const KMeansOptions& o) {
  if (o.clusters < 1 || o.clusters > kMaxClusters) {
    throw ValueError(
        detail::concat("k-means: ", o.clusters, " clusters; expected 1 to ", kMaxClusters));
  }
  if (o.max_iterations < 1) throw ValueError("k-means: max_iterations must be at least 1");
  if (!(o.tol >= 0)) throw ValueError("k-means: tol must be >= 0");
  if (o.init_rounds < 1 || !(o.oversampling > 0)) {
    throw ValueError("k-means: init_rounds must be at least 1 and oversampling above 0");
  }
}

// What one pass tells about a process's rows: each row's squared norm (kept, one per row), and
// [the features' sums, their sums of squares, the row at `pick` of the whole table (zeros when it
// is not here)].
struct RowFacts {
  std::vector<double> norms;
  std::vector<double> sums;
};

RowFacts read_facts(RowSource& rows, int64_t pick) {
  const int64_t d = rows.num_features();
  RowFacts facts;
  facts.norms.resize(static_cast<size_t>(rows.num_rows()));
  facts.sums = sum_blocks(rows, static_cast<size_t>(3 * d), [&](const RowBlock& b, auto& sums) {
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      const float* row = x + r * d;
      facts.norms[static_cast<size_t>(b.first + r - rows.first_row())] = squared_norm(row, d);
      for (int64_t f = 0; f < d; ++f) {
        sums[static_cast<size_t>(f)] += row[f];
        sums[static_cast<size_t>(d + f)] += static_cast<double>(row[f]) * row[f];
      }
      if (b.first + r == pick) std::copy(row, row + d, sums.begin() + 2 * d);
    }
  });
  return facts;
}

[[noreturn]] void throw_too_few_points(int64_t points, int64_t clusters) {
  throw ValueError(detail::concat("k-means: the rows hold only ", points,
                                  " distinct points, fewer than the ", clusters,
                                  " clusters asked for"));
}

// k-means|| candidates and their weights (the rows nearest to each), the same on every process.
struct Candidates {
  std::vector<float> rows;  // [count, features]
  std::vector<double> weights;
};

class ParallelInit {
 public:
  ParallelInit(RowSource& rows, comm::ProcessGroup* group, const KMeansOptions& options,
               const std::vector<double>& norms)
      : rows_(rows), group_(group), options_(options), norms_(norms), d_(rows.num_features()) {}

  Candidates run(std::vector<float> first) {
    const size_t local = norms_.size();
    cost_.assign(local, std::numeric_limits<double>::infinity());
    nearest_.assign(local, 0);
    Candidates c;
    std::vector<float> fresh = std::move(first);
    for (int64_t round = 1;; ++round) {
      c.rows.insert(c.rows.end(), fresh.begin(), fresh.end());
      const double psi = update_costs(fresh, count(c.rows) - count(fresh));
      const bool enough = count(c.rows) >= options_.clusters;
      if ((round > options_.init_rounds && enough) || psi == 0 ||
          round > options_.init_rounds + kExtraInitRounds) {
        break;
      }
      fresh = gather_rows(group_, sample(round, psi));
    }
    if (count(c.rows) < options_.clusters) throw_too_few_points(count(c.rows), options_.clusters);
    c.weights.assign(static_cast<size_t>(count(c.rows)), 0.0);
    for (int32_t j : nearest_) c.weights[static_cast<size_t>(j)] += 1.0;
    sum_over(group_, c.weights);
    return c;
  }

 private:
  [[nodiscard]] int64_t count(const std::vector<float>& rows) const {
    return static_cast<int64_t>(rows.size()) / d_;
  }

  // Lowers each row's cost (squared distance to the nearest candidate) by the new candidates,
  // numbered from `first`; returns the total cost over every process.
  double update_costs(const std::vector<float>& fresh, int64_t first) {
    if (fresh.empty()) return total_cost();
    const Centers centers(fresh, d_);
    rows_.for_each_block_in_parts([&](const RowBlock& b, int /*part*/) {
      std::vector<int32_t> index(static_cast<size_t>(b.rows()));
      std::vector<double> partial(static_cast<size_t>(b.rows()));
      centers.nearest(b.x, index, partial);
      auto i = static_cast<size_t>(b.first - rows_.first_row());
      for (int64_t r = 0; r < b.rows(); ++r, ++i) {
        const double d2 = std::max(0.0, norms_[i] + partial[static_cast<size_t>(r)]);
        if (d2 < cost_[i]) {
          cost_[i] = d2;
          nearest_[i] = static_cast<int32_t>(first + index[static_cast<size_t>(r)]);
        }
      }
    });
    return total_cost();
  }

  // The sum of the rows' costs over every process, added in row order.
  double total_cost() {
    std::vector<double> total{0.0};
    for (double v : cost_) total[0] += v;
    sum_over(group_, total);
    return total[0];
  }

  // This process's rows that round `round` samples: each with probability l x cost / psi.
  std::vector<float> sample(int64_t round, double psi) {
    const double l = options_.oversampling * static_cast<double>(options_.clusters);
    std::vector<float> picked;
    size_t i = 0;
    rows_.for_each_block([&](const RowBlock& b) {
      const float* x = b.x.data<float>();
      for (int64_t r = 0; r < b.rows(); ++r, ++i) {
        const auto row = static_cast<uint64_t>(b.first + r);
        if (keyed_uniform(options_.seed, static_cast<uint64_t>(round), row) < l * cost_[i] / psi) {
          picked.insert(picked.end(), x + r * d_, x + (r + 1) * d_);
        }
      }
    });
    return picked;
  }

  RowSource& rows_;
  comm::ProcessGroup* group_;
  const KMeansOptions& options_;
  const std::vector<double>& norms_;
  int64_t d_;
  std::vector<double> cost_;
  std::vector<int32_t> nearest_;
};

double squared_distance(const float* a, const float* b, int64_t d) {
  double s = 0.0;
  for (int64_t f = 0; f < d; ++f) {
    const double v = static_cast<double>(a[f]) - b[f];
    s += v * v;
  }
  return s;
}

// k clusters of the weighted candidates: k-means++ seeding, then Lloyd iterations. Every
// process computes it alike from the same candidates and seed.
std::vector<float> reduce_candidates(const Candidates& c, int64_t k, int64_t d, uint64_t seed) {
  const auto m = static_cast<int64_t>(c.weights.size());
  const float* rows = c.rows.data();
  std::vector<float> centers;
  std::vector<double> dist(static_cast<size_t>(m), std::numeric_limits<double>::infinity());
  for (int64_t j = 0; j < k; ++j) {
    double total = 0.0;
    for (int64_t i = 0; i < m; ++i) {
      total += c.weights[static_cast<size_t>(i)] * (j == 0 ? 1.0 : dist[static_cast<size_t>(i)]);
    }
    if (total == 0) throw_too_few_points(j, k);  // every candidate is a center already
    double target = keyed_uniform(seed, ~uint64_t{0}, static_cast<uint64_t>(j)) * total;
    int64_t pick = m - 1;
    for (int64_t i = 0; i < m; ++i) {
      target -= c.weights[static_cast<size_t>(i)] * (j == 0 ? 1.0 : dist[static_cast<size_t>(i)]);
      if (target < 0) {
        pick = i;
        break;
      }
    }
    centers.insert(centers.end(), rows + pick * d, rows + (pick + 1) * d);
    for (int64_t i = 0; i < m; ++i) {
      dist[static_cast<size_t>(i)] = std::min(dist[static_cast<size_t>(i)],
                                              squared_distance(rows + i * d, rows + pick * d, d));
    }
  }
  std::vector<int64_t> label(static_cast<size_t>(m), -1);
  for (int64_t it = 0; it < kCandidateIterations; ++it) {
    bool changed = false;
    for (int64_t i = 0; i < m; ++i) {
      int64_t best = 0;
      double top = std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < k; ++j) {
        const double v = squared_distance(rows + i * d, centers.data() + j * d, d);
        if (v < top) top = v, best = j;
      }
      changed |= label[static_cast<size_t>(i)] != best;
      label[static_cast<size_t>(i)] = best;
    }
    if (!changed) break;
    std::vector<double> sums(static_cast<size_t>(k * d), 0.0);
    std::vector<double> weight(static_cast<size_t>(k), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t j = label[static_cast<size_t>(i)];
      const double w = c.weights[static_cast<size_t>(i)];
      weight[static_cast<size_t>(j)] += w;
      for (int64_t f = 0; f < d; ++f) sums[static_cast<size_t>(j * d + f)] += w * rows[i * d + f];
    }
    for (int64_t j = 0; j < k; ++j) {
      if (weight[static_cast<size_t>(j)] == 0) continue;
      for (int64_t f = 0; f < d; ++f) {
        centers[static_cast<size_t>(j * d + f)] = static_cast<float>(
            sums[static_cast<size_t>(j * d + f)] / weight[static_cast<size_t>(j)]);
      }
    }
  }
  return centers;
}

// One Lloyd iteration's sums over a process's rows: per cluster the rows' sum and count, the
// inertia and how many rows changed cluster; [k x d sums, k counts, inertia, changed].
std::vector<double> lloyd_sums(RowSource& rows, const Centers& centers,
                               const std::vector<double>& norms, std::vector<int32_t>& labels) {
  const int64_t d = rows.num_features();
  const int64_t k = centers.count();
  return sum_blocks(rows, static_cast<size_t>(k * d + k + 2), [&](const RowBlock& b, auto& sums) {
    const int64_t n = b.rows();
    std::vector<int32_t> index(static_cast<size_t>(n));
    std::vector<double> partial(static_cast<size_t>(n));
    centers.nearest(b.x, index, partial);
    Tensor onehot = Tensor::zeros({n, k});
    float* h = onehot.data<float>();
    auto i = static_cast<size_t>(b.first - rows.first_row());
    for (int64_t r = 0; r < n; ++r, ++i) {
      const int32_t j = index[static_cast<size_t>(r)];
      h[r * k + j] = 1.0F;
      sums[static_cast<size_t>(k * d + j)] += 1.0;
      sums[static_cast<size_t>(k * d + k)] +=
          std::max(0.0, norms[i] + partial[static_cast<size_t>(r)]);
      sums[static_cast<size_t>(k * d + k + 1)] += labels[i] != j ? 1.0 : 0.0;
      labels[i] = j;
    }
    Tensor block_sums = Tensor::empty({k, d});
    matmul_into(onehot.t(), b.x, block_sums);
    const float* s = block_sums.data<float>();
    for (int64_t e = 0; e < k * d; ++e) sums[static_cast<size_t>(e)] += s[e];
  });
}

}  // namespace

void KMeansModel::assign(const Tensor& x, std::span<int64_t> labels,
                         std::span<double> distances) const {
  if (x.dim() != 2 || x.size(1) != features) {
    throw ShapeError(detail::concat("KMeansModel::assign: rows of ", features,
                                    " features expected, got ", shape_str(x.shape())));
  }
  const Centers c(centers, features);
  const auto n = static_cast<size_t>(x.size(0));
  std::vector<int32_t> index(n);
  std::vector<double> partial(n);
  c.nearest(x, index, partial);
  const float* rows = x.data<float>();
  for (size_t r = 0; r < n; ++r) {
    labels[r] = index[r];
    distances[r] = std::max(0.0, squared_norm(rows + r * features, features) + partial[r]);
  }
}

KMeansFit fit_kmeans(RowSource& rows, comm::ProcessGroup* group, const KMeansOptions& options) {
  check_options(options);
  check_every_process_has_rows(rows, group, "k-means");
  const int64_t d = rows.num_features();
  std::vector<double> total{static_cast<double>(rows.num_rows())};
  sum_over(group, total);
  KMeansFit fit;
  fit.rows = static_cast<int64_t>(total[0]);
  if (fit.rows < options.clusters) {
    throw ValueError(
        detail::concat("k-means: ", fit.rows, " rows for ", options.clusters, " clusters"));
  }
  const auto first = static_cast<int64_t>(mix64(options.seed) % static_cast<uint64_t>(fit.rows));
  RowFacts facts = read_facts(rows, first);
  sum_over(group, facts.sums);
  double variance = 0.0;
  const auto n = static_cast<double>(fit.rows);
  for (int64_t f = 0; f < d; ++f) {
    const double mean = facts.sums[static_cast<size_t>(f)] / n;
    variance += std::max(0.0, facts.sums[static_cast<size_t>(d + f)] / n - mean * mean);
  }
  const double tol = options.tol * variance / static_cast<double>(d);

  const Candidates candidates = ParallelInit(rows, group, options, facts.norms)
                                    .run({facts.sums.begin() + 2 * d, facts.sums.end()});
  fit.candidates = static_cast<int64_t>(candidates.weights.size());
  KMeansModel& model = fit.model;
  model.features = d;
  model.clusters = options.clusters;
  model.centers = reduce_candidates(candidates, options.clusters, d, options.seed);

  const int64_t k = options.clusters;
  std::vector<int32_t> labels(facts.norms.size(), -1);
  fit.stop = "the iteration limit was reached";
  for (int64_t it = 1; it <= options.max_iterations; ++it) {
    std::vector<double> sums = lloyd_sums(rows, Centers(model.centers, d), facts.norms, labels);
    sum_over(group, sums);
    fit.iterations = it;
    if (options.on_iteration) options.on_iteration(it, sums[static_cast<size_t>(k * d + k)]);
    double shift = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      const double count = sums[static_cast<size_t>(k * d + j)];
      if (count == 0) continue;  // an empty cluster keeps its center
      for (int64_t f = 0; f < d; ++f) {
        float& c = model.centers[static_cast<size_t>(j * d + f)];
        const auto moved = static_cast<float>(sums[static_cast<size_t>(j * d + f)] / count);
        shift += (static_cast<double>(moved) - c) * (static_cast<double>(moved) - c);
        c = moved;
      }
    }
    if (sums[static_cast<size_t>(k * d + k + 1)] == 0) {
      fit.converged = true;
      fit.stop = "no row changed its cluster";
      break;
    }
    if (shift <= tol) {
      fit.converged = true;
      fit.stop = "the centers moved less than the tolerance";
      break;
    }
  }
  return fit;
}

KMeansScore score_kmeans(const KMeansModel& model, RowSource& rows, comm::ProcessGroup* group) {
  std::vector<double> sums = sum_blocks(rows, 2, [&](const RowBlock& b, auto& sums) {
    std::vector<int64_t> labels(static_cast<size_t>(b.rows()));
    std::vector<double> distances(static_cast<size_t>(b.rows()));
    model.assign(b.x, labels, distances);
    sums[0] += static_cast<double>(b.rows());
    for (double v : distances) sums[1] += v;
  });
  sum_over(group, sums);
  return {static_cast<int64_t>(sums[0]), sums[1]};
}

void KMeansModel::write(BinaryWriter& out) const {
  out.write_u32(kKMeansVersion);
  out.write_i64(features);
  out.write_i64(clusters);
  out.write_bytes(std::as_bytes(std::span(centers)));
}

KMeansModel KMeansModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kKMeansVersion) {
    throw FormatError(detail::concat(in.source(), ": k-means model version ", version,
                                     ", expected ", kKMeansVersion));
  }
  KMeansModel m;
  m.features = in.read_i64();
  m.clusters = in.read_i64();
  if (m.features < 1 || m.features > kMaxKMeansFeatures || m.clusters < 1 ||
      m.clusters > kMaxClusters) {
    throw FormatError(
        detail::concat(in.source(), ": ", m.clusters, " clusters of ", m.features, " features"));
  }
  const auto bytes = static_cast<uint64_t>(m.features * m.clusters) * sizeof(float);
  if (auto left = in.remaining(); left && *left < bytes) {
    throw FormatError(detail::concat(in.source(), ": ", m.clusters, " centers need ", bytes,
                                     " bytes, ", *left, " left"));
  }
  m.centers.resize(static_cast<size_t>(m.features * m.clusters));
  in.read_bytes(std::as_writable_bytes(std::span(m.centers)));
  return m;
}

}  // namespace tessera::estimators
