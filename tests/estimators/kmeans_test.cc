// k-means with k-means|| seeding on one process and on several (ranks as threads), against blobs
// whose centers are known.
#include "tessera/estimators/kmeans.h"

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../comm/run_ranks.h"
#include "tessera/core/error.h"
#include "tessera/core/serialize.h"
#include "tessera/data/in_memory_dataset.h"
#include "testing/text.h"

namespace tessera::estimators {
namespace {

constexpr int64_t kDims = 5;

// Row r lies near blob r % blobs, whose center is 10 x (the blob's number + 1) on each axis, with
// standard normal noise.
std::shared_ptr<data::Dataset> blobs(int64_t n, int64_t count, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(n * kDims));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t f = 0; f < kDims; ++f) {
      x[static_cast<size_t>(r * kDims + f)] =
          10.0F * static_cast<float>(r % count + 1) + normal(gen);
    }
  }
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {n, kDims}),
                                                 Tensor::zeros({n}, DType::kInt64));
}

KMeansOptions options(int64_t clusters, uint64_t seed) {
  KMeansOptions o;
  o.clusters = clusters;
  o.seed = seed;
  return o;
}

TEST(KMeans, FindsTheBlobsCenters) {
  auto data = blobs(3000, 4, 7);
  auto rows = dataset_rows(data, {.block_rows = 256});
  const KMeansFit fit = fit_kmeans(*rows, nullptr, options(4, 1));
  EXPECT_TRUE(fit.converged) << fit.stop;
  std::vector<bool> found(4, false);
  for (int64_t j = 0; j < 4; ++j) {
    const float c = fit.model.centers[static_cast<size_t>(j * kDims)];
    const auto blob = static_cast<int64_t>(std::lround(c / 10.0F)) - 1;
    ASSERT_GE(blob, 0);
    ASSERT_LT(blob, 4);
    found[static_cast<size_t>(blob)] = true;
    for (int64_t f = 0; f < kDims; ++f) {
      EXPECT_NEAR(fit.model.centers[static_cast<size_t>(j * kDims + f)], 10.0 * (blob + 1), 0.15);
    }
  }
  EXPECT_EQ(found, std::vector<bool>(4, true)) << "one center per blob";
  // Unit-variance noise on 5 axes: about 5 per row.
  const KMeansScore score = score_kmeans(fit.model, *rows, nullptr);
  EXPECT_EQ(score.rows, 3000);
  EXPECT_NEAR(score.inertia / 3000, 5.0, 0.4);
}

// The fitted centers are a fixed point of Lloyd's step: each is the mean of the rows nearest it.
TEST(KMeans, EachCenterIsTheMeanOfItsRows) {
  auto data = blobs(2000, 3, 3);
  auto rows = dataset_rows(data, {.block_rows = 300});
  KMeansOptions o = options(5, 2);
  o.tol = 0;  // until no row changes its cluster
  const KMeansFit fit = fit_kmeans(*rows, nullptr, o);
  ASSERT_EQ(fit.stop, "no row changed its cluster");
  std::vector<double> sums(static_cast<size_t>(5 * kDims), 0.0);
  std::vector<double> counts(5, 0.0);
  rows->for_each_block([&](const RowBlock& b) {
    std::vector<int64_t> labels(static_cast<size_t>(b.rows()));
    std::vector<double> distances(static_cast<size_t>(b.rows()));
    fit.model.assign(b.x, labels, distances);
    for (int64_t r = 0; r < b.rows(); ++r) {
      const auto j = static_cast<size_t>(labels[static_cast<size_t>(r)]);
      counts[j] += 1;
      for (int64_t f = 0; f < kDims; ++f) sums[j * kDims + f] += b.x.data<float>()[r * kDims + f];
    }
  });
  for (size_t j = 0; j < 5; ++j) {
    ASSERT_GT(counts[j], 0) << "cluster " << j;
    for (size_t f = 0; f < kDims; ++f) {
      EXPECT_NEAR(fit.model.centers[j * kDims + f], sums[j * kDims + f] / counts[j], 1e-4);
    }
  }
}

TEST(KMeans, SeveralProcessesFitOneProcessesModel) {
  auto data = blobs(1500, 6, 11);
  auto one_rows = dataset_rows(data, {.block_rows = 128});
  const KMeansFit one = fit_kmeans(*one_rows, nullptr, options(4, 5));
  for (int ranks : {2, 4}) {
    std::vector<KMeansFit> fits(static_cast<size_t>(ranks));
    comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
      auto rows = dataset_rows(data, {.rank = group.rank(), .ranks = ranks, .block_rows = 100});
      fits[static_cast<size_t>(group.rank())] = fit_kmeans(*rows, &group, options(4, 5));
    });
    for (const KMeansFit& f : fits) {
      EXPECT_EQ(f.rows, 1500);
      EXPECT_EQ(f.candidates, one.candidates) << ranks << " ranks sampled other rows";
      EXPECT_EQ(f.iterations, one.iterations) << ranks << " ranks";
      ASSERT_EQ(f.model.centers.size(), one.model.centers.size());
      for (size_t e = 0; e < one.model.centers.size(); ++e) {
        EXPECT_NEAR(f.model.centers[e], one.model.centers[e], 1e-4 * std::abs(one.model.centers[e]))
            << ranks << " ranks, center value " << e;
      }
      EXPECT_EQ(f.model.centers, fits[0].model.centers) << "every rank holds the same model";
    }
  }
}

TEST(KMeans, FewerDistinctRowsThanClustersIsAClearError) {
  std::vector<float> x{1, 1, 2, 2, 1, 1, 2, 2, 1, 1};
  auto data = std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {5, 2}),
                                                      Tensor::zeros({5}, DType::kInt64));
  auto rows = dataset_rows(data, {});
  try {
    (void)fit_kmeans(*rows, nullptr, options(3, 0));
    FAIL() << "3 clusters of 2 distinct points";
  } catch (const ValueError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "only 2 distinct points")) << e.what();
  }
  try {
    (void)fit_kmeans(*rows, nullptr, options(6, 0));
    FAIL() << "6 clusters of 5 rows";
  } catch (const ValueError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "5 rows for 6 clusters")) << e.what();
  }
}

TEST(KMeans, ItsBytesReadBackAndBadBytesAreRefused) {
  auto data = blobs(300, 3, 1);
  auto rows = dataset_rows(data, {});
  const KMeansModel model = fit_kmeans(*rows, nullptr, options(3, 0)).model;
  std::ostringstream out;
  BinaryWriter w(out);
  model.write(w);
  std::istringstream in(out.str());
  BinaryReader r(in, "model.ckpt");
  const KMeansModel back = KMeansModel::read(r);
  EXPECT_EQ(back.features, kDims);
  EXPECT_EQ(back.clusters, 3);
  EXPECT_EQ(back.centers, model.centers);
  std::istringstream cut(out.str().substr(0, out.str().size() - 1));
  BinaryReader short_reader(cut, "model.ckpt");
  try {
    (void)KMeansModel::read(short_reader);
    FAIL() << "a short model read";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "model.ckpt")) << e.what();
  }
}

}  // namespace
}  // namespace tessera::estimators
