#include "tessera/estimators/pca.h"

#include <algorithm>
#include <cmath>

#include "collective.h"
#include "gram.h"
#include "tessera/core/error.h"
#include "tessera/tensor/matmul.h"

extern "C" void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n,
                        double* a, const int* lda, const double* vl, const double* vu,
                        const int* il, const int* iu, const double* abstol, int* m, double* w,
                        double* z, const int* ldz, int* isuppz, double* work, const int* lwork,
                        int* iwork, const int* liwork, int* info);

namespace tessera::estimators {
namespace {

constexpr uint32_t kPcaVersion = 1;
// dsyevd takes the matrix's order as an int, and the covariance is features^2 doubles.
constexpr int64_t kMaxPcaFeatures = int64_t{1} << 15;

// The k largest eigenvalues of the symmetric matrix a (n x n, destroyed), ascending, and their
// eigenvectors in `vectors` (column-major, n x k): LAPACK's dsyevr, which computes no others.
std::vector<double> top_eigen(std::vector<double>& a, int64_t n, int64_t k,
                              std::vector<double>& vectors) {
  const int order = static_cast<int>(n);
  const int first = static_cast<int>(n - k + 1);  // 1-based
  const double unused = 0.0;
  const double abstol = 0.0;
  int found = 0;
  std::vector<double> values(static_cast<size_t>(n));
  vectors.assign(static_cast<size_t>(n * k), 0.0);
  std::vector<int> support(static_cast<size_t>(2 * k));
  int info = 0;
  int lwork = -1;
  int liwork = -1;
  double work_size = 0;
  int iwork_size = 0;
  for (int pass = 0; pass < 2; ++pass) {  // a query of the workspace's size, then the work
    std::vector<double> work(pass == 0 ? 1 : static_cast<size_t>(lwork));
    std::vector<int> iwork(pass == 0 ? 1 : static_cast<size_t>(liwork));
    dsyevr_("V", "I", "U", &order, a.data(), &order, &unused, &unused, &first, &order, &abstol,
            &found, values.data(), vectors.data(), &order, support.data(),
            pass == 0 ? &work_size : work.data(), &lwork, pass == 0 ? &iwork_size : iwork.data(),
            &liwork, &info);
    if (info != 0) throw InternalError(detail::concat("PCA: dsyevr failed (info ", info, ")"));
    lwork = static_cast<int>(work_size);
    liwork = iwork_size;
  }
  values.resize(static_cast<size_t>(k));
  return values;
}

}  // namespace

PcaModel fit_pca(RowSource& rows, comm::ProcessGroup* group, int64_t components) {
  const int64_t d = rows.num_features();
  if (d > kMaxPcaFeatures) {
    throw ValueError(detail::concat("PCA: ", d, " features; at most ", kMaxPcaFeatures));
  }
  if (components < 1 || components > d) {
    throw ValueError(
        detail::concat("PCA: ", components, " components of ", d, " features; expected 1 to ", d));
  }
  check_every_process_has_rows(rows, group, "PCA");
  // [rows, the features' sums, x^T x (d x d)]
  std::vector<double> sums = sum_blocks(rows, static_cast<size_t>(1 + d + d * d),
                                        [&](const RowBlock& b, std::vector<double>& s) {
                                          s[0] += static_cast<double>(b.rows());
                                          const float* x = b.x.data<float>();
                                          for (int64_t r = 0; r < b.rows(); ++r) {
                                            for (int64_t f = 0; f < d; ++f)
                                              s[static_cast<size_t>(1 + f)] += x[r * d + f];
                                          }
                                          add_upper_outer(b.x, s.data() + 1 + d);
                                        });
  sum_over(group, sums);
  mirror_upper(sums.data() + 1 + d, d);
  const double n = sums[0];
  if (n < 2) throw ValueError("PCA: fewer than 2 rows");
  PcaModel m;
  m.features = d;
  m.components = components;
  m.mean.resize(static_cast<size_t>(d));
  for (int64_t f = 0; f < d; ++f)
    m.mean[static_cast<size_t>(f)] = sums[static_cast<size_t>(1 + f)] / n;
  std::vector<double> cov(static_cast<size_t>(d * d));
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const auto e = static_cast<size_t>(i * d + j);
      cov[e] = (sums[1 + static_cast<size_t>(d) + e] -
                n * m.mean[static_cast<size_t>(i)] * m.mean[static_cast<size_t>(j)]) /
               (n - 1);
    }
  }
  for (int64_t f = 0; f < d; ++f) m.total_variance += cov[static_cast<size_t>(f * d + f)];
  std::vector<double> vectors;
  const std::vector<double> values = top_eigen(cov, d, components, vectors);
  for (int64_t c = 0; c < components; ++c) {
    const int64_t column = components - 1 - c;  // eigenvalues ascend
    const double* v = vectors.data() + column * d;
    const int64_t top =
        std::max_element(v, v + d, [](double a, double b) { return std::abs(a) < std::abs(b); }) -
        v;
    const double sign = v[top] < 0 ? -1.0 : 1.0;
    for (int64_t f = 0; f < d; ++f) m.axes.push_back(sign * v[f]);
    m.variances.push_back(std::max(0.0, values[static_cast<size_t>(column)]));
  }
  return m;
}

std::vector<double> PcaModel::transform(const Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != features) {
    throw ShapeError(detail::concat("PcaModel::transform: rows of ", features,
                                    " features expected, got ", shape_str(x.shape())));
  }
  // (x - mean) A^T = x A^T - mean A^T: one product, then each component's offset.
  const int64_t n = x.size(0);
  const Tensor a =
      Tensor::from_vector(std::vector<float>(axes.begin(), axes.end()), {components, features});
  Tensor product = Tensor::empty({n, components});
  matmul_into(x, a.t(), product);
  std::vector<double> offset(static_cast<size_t>(components), 0.0);
  for (int64_t c = 0; c < components; ++c) {
    for (int64_t f = 0; f < features; ++f) {
      offset[static_cast<size_t>(c)] +=
          mean[static_cast<size_t>(f)] * axes[static_cast<size_t>(c * features + f)];
    }
  }
  const float* p = product.data<float>();
  std::vector<double> out(static_cast<size_t>(n * components));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < components; ++c) {
      out[static_cast<size_t>(r * components + c)] =
          p[r * components + c] - offset[static_cast<size_t>(c)];
    }
  }
  return out;
}

double explained_variance(const PcaModel& model, RowSource& rows, comm::ProcessGroup* group) {
  // [the rows' squared distances to the mean, the squares of their coordinates]
  std::vector<double> sums = sum_blocks(rows, 2, [&](const RowBlock& b, std::vector<double>& s) {
    const std::vector<double> t = model.transform(b.x);
    for (double v : t) s[1] += v * v;
    const float* x = b.x.data<float>();
    for (int64_t r = 0; r < b.rows(); ++r) {
      for (int64_t f = 0; f < model.features; ++f) {
        const double e = x[r * model.features + f] - model.mean[static_cast<size_t>(f)];
        s[0] += e * e;
      }
    }
  });
  sum_over(group, sums);
  return sums[0] > 0 ? sums[1] / sums[0] : 1.0;
}

void PcaModel::write(BinaryWriter& out) const {
  out.write_u32(kPcaVersion);
  out.write_i64(features);
  out.write_i64(components);
  out.write_f64(total_variance);
  out.write_bytes(std::as_bytes(std::span(mean)));
  out.write_bytes(std::as_bytes(std::span(axes)));
  out.write_bytes(std::as_bytes(std::span(variances)));
}

PcaModel PcaModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kPcaVersion) {
    throw FormatError(
        detail::concat(in.source(), ": PCA model version ", version, ", expected ", kPcaVersion));
  }
  PcaModel m;
  m.features = in.read_i64();
  m.components = in.read_i64();
  m.total_variance = in.read_f64();
  if (m.features < 1 || m.features > kMaxPcaFeatures || m.components < 1 ||
      m.components > m.features) {
    throw FormatError(detail::concat(in.source(), ": ", m.components, " components of ", m.features,
                                     " features"));
  }
  const auto doubles = static_cast<uint64_t>(m.features + m.components * m.features + m.components);
  if (auto left = in.remaining(); left && *left < doubles * sizeof(double)) {
    throw FormatError(detail::concat(in.source(), ": the model needs ", doubles * sizeof(double),
                                     " bytes, ", *left, " left"));
  }
  m.mean.resize(static_cast<size_t>(m.features));
  m.axes.resize(static_cast<size_t>(m.components * m.features));
  m.variances.resize(static_cast<size_t>(m.components));
  in.read_bytes(std::as_writable_bytes(std::span(m.mean)));
  in.read_bytes(std::as_writable_bytes(std::span(m.axes)));
  in.read_bytes(std::as_writable_bytes(std::span(m.variances)));
  return m;
}

}  // namespace tessera::estimators
