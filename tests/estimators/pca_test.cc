// PCA on rows drawn along known axes with known variances, on one process and on several.
#include "tessera/estimators/pca.h"

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "../comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/data/in_memory_dataset.h"

namespace tessera::estimators {
namespace {

// The rows' true axes: a rotation of the 3-D axes; variances 9, 4 and 1 along them, mean (5, -2,
// 1).
const double kAxes[3][3] = {{0.6, 0.8, 0.0}, {-0.8, 0.6, 0.0}, {0.0, 0.0, 1.0}};

std::shared_ptr<data::Dataset> stretched(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const double scale[3] = {3, 2, 1};
  const double mean[3] = {5, -2, 1};
  std::vector<float> x(static_cast<size_t>(n * 3));
  for (int64_t r = 0; r < n; ++r) {
    double z[3];
    for (double& v : z) v = normal(gen);
    for (int f = 0; f < 3; ++f) {
      double v = mean[f];
      for (int a = 0; a < 3; ++a) v += scale[a] * z[a] * kAxes[a][f];
      x[static_cast<size_t>(r * 3 + f)] = static_cast<float>(v);
    }
  }
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {n, 3}),
                                                 Tensor::zeros({n}, DType::kInt64));
}

TEST(Pca, FindsTheAxesAndTheirVariances) {
  auto rows = dataset_rows(stretched(20000, 1), {.block_rows = 1000});
  const PcaModel m = fit_pca(*rows, nullptr, 2);
  ASSERT_EQ(m.components, 2);
  EXPECT_NEAR(m.variances[0], 9, 0.3);
  EXPECT_NEAR(m.variances[1], 4, 0.15);
  EXPECT_NEAR(m.total_variance, 14, 0.4);
  EXPECT_NEAR(m.mean[0], 5, 0.05);
  for (int c = 0; c < 2; ++c) {
    double along = 0;
    double largest = 0;
    for (int f = 0; f < 3; ++f) {
      const double v = m.axes[static_cast<size_t>(c * 3 + f)];
      along += v * kAxes[c][f];
      if (std::abs(v) > std::abs(largest)) largest = v;
    }
    EXPECT_GT(std::abs(along), 0.999) << "component " << c;
    EXPECT_GT(largest, 0) << "signed so that its largest entry is positive";
  }
  double dot = 0;
  for (int f = 0; f < 3; ++f)
    dot += m.axes[static_cast<size_t>(f)] * m.axes[static_cast<size_t>(3 + f)];
  EXPECT_NEAR(dot, 0, 1e-9);
  // On its own rows the model keeps its variances' share of the total.
  EXPECT_NEAR(explained_variance(m, *rows, nullptr),
              (m.variances[0] + m.variances[1]) / m.total_variance, 1e-4);
}

TEST(Pca, SeveralProcessesFitOneProcessesModel) {
  auto data = stretched(3000, 2);
  auto one_rows = dataset_rows(data, {.block_rows = 128});
  const PcaModel one = fit_pca(*one_rows, nullptr, 2);
  for (int ranks : {2, 4}) {
    std::vector<PcaModel> fits(static_cast<size_t>(ranks));
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      auto rows = dataset_rows(data, {.rank = group.rank(), .ranks = ranks, .block_rows = 100});
      fits[static_cast<size_t>(group.rank())] = fit_pca(*rows, &group, 2);
    });
    for (const PcaModel& m : fits) {
      for (size_t e = 0; e < one.axes.size(); ++e) {
        EXPECT_NEAR(m.axes[e], one.axes[e], 1e-6) << ranks << " ranks";
      }
      for (size_t c = 0; c < 2; ++c) {
        EXPECT_NEAR(m.variances[c], one.variances[c], 1e-6 * one.variances[c]) << ranks << " ranks";
      }
      EXPECT_EQ(m.axes, fits[0].axes) << "every rank holds the same model";
    }
  }
}

TEST(Pca, BadComponentsAndBytesAreErrors) {
  auto rows = dataset_rows(stretched(100, 3), {});
  EXPECT_THROW((void)fit_pca(*rows, nullptr, 4), ValueError);
  EXPECT_THROW((void)fit_pca(*rows, nullptr, 0), ValueError);
  const PcaModel m = fit_pca(*rows, nullptr, 3);
  std::ostringstream out;
  BinaryWriter w(out);
  m.write(w);
  std::istringstream in(out.str());
  BinaryReader r(in, "model.ckpt");
  const PcaModel back = PcaModel::read(r);
  EXPECT_EQ(back.axes, m.axes);
  EXPECT_EQ(back.mean, m.mean);
  std::istringstream cut(out.str().substr(0, out.str().size() - 1));
  BinaryReader short_reader(cut, "model.ckpt");
  EXPECT_THROW((void)PcaModel::read(short_reader), FormatError);
}

}  // namespace
}  // namespace tessera::estimators
