// Linear models against what is known about them: the gradient against finite differences, least
// squares against the normal equations, a model fitted by 2 and 4 processes (threads with real
// groups) against one process's, and the errors a bad label gets.
#include "tessera/estimators/linear_model.h"

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

// n rows of d features from a standard normal; targets from a known linear model: a value with
// noise ("squared"), or the class of the largest of `classes` margins with logistic noise.
std::shared_ptr<data::Dataset> table(int64_t n, int64_t d, int64_t classes, uint32_t seed,
                                     double shift = 0.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::vector<double> truth(static_cast<size_t>(d * std::max<int64_t>(classes, 1)));
  for (double& w : truth) w = normal(gen);
  std::vector<float> x(static_cast<size_t>(n * (d + (classes == 0 ? 1 : 0))));
  std::vector<int64_t> labels(static_cast<size_t>(n), 0);
  const int64_t cols = d + (classes == 0 ? 1 : 0);
  std::uniform_real_distribution<double> uniform(1e-9, 1.0);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> m(static_cast<size_t>(std::max<int64_t>(classes, 1)), 0.0);
    for (int64_t j = 0; j < d; ++j) {
      const double v = normal(gen) * (1.0 + j) + shift;
      x[static_cast<size_t>(i * cols + j)] = static_cast<float>(v);
      for (size_t c = 0; c < m.size(); ++c)
        m[c] += v * truth[static_cast<size_t>(j) * m.size() + c];
    }
    if (classes == 0) {
      x[static_cast<size_t>(i * cols + d)] = static_cast<float>(m[0] + 0.5 * normal(gen) + 3.0);
      continue;
    }
    int64_t best = 0;
    double top = -1e300;
    for (int64_t c = 0; c < classes; ++c) {
      const double u = uniform(gen);
      const double noisy = m[static_cast<size_t>(c)] - std::log(-std::log(u));  // Gumbel
      if (noisy > top) top = noisy, best = c;
    }
    labels[static_cast<size_t>(i)] = best;
  }
  return std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {n, cols}),
                                                 Tensor::from_vector(labels, {n}));
}

ShardOptions shard(int rank, int ranks, bool regression, int64_t d, int64_t block = 64) {
  return {.rank = rank, .ranks = ranks, .block_rows = block, .target_feature = regression ? d : -1};
}

LinearOptions options(const std::string& loss, double l2, bool standardize = false) {
  LinearOptions o;
  o.loss = loss;
  o.l2 = l2;
  o.standardize = standardize;
  o.solver.gradient_tolerance = 1e-9;
  return o;
}

TEST(LinearModel, GradientMatchesFiniteDifferences) {
  for (const auto& [loss, classes] : std::vector<std::pair<std::string, int64_t>>{
           {"squared", 0}, {"logistic", 2}, {"logistic", 4}, {"squared_hinge", 2}}) {
    for (bool standardize : {false, true}) {
      auto rows = dataset_rows(table(300, 5, classes, 7, 0.5), shard(0, 1, classes == 0, 5));
      LinearProblem problem(*rows, nullptr, options(loss, 0.1, standardize));
      std::mt19937 gen(3);
      std::normal_distribution<double> normal;
      std::vector<double> p(static_cast<size_t>(problem.num_parameters()));
      for (double& v : p) v = 0.3 * normal(gen);
      std::vector<double> grad;
      problem(p, grad);
      std::vector<double> unused;
      for (size_t i = 0; i < p.size(); ++i) {
        const double h = 1e-4;
        std::vector<double> up = p;
        std::vector<double> down = p;
        up[i] += h;
        down[i] -= h;
        const double numeric = (problem(up, unused) - problem(down, unused)) / (2 * h);
        EXPECT_NEAR(grad[i], numeric, 2e-3 * std::max(1.0, std::abs(numeric)))
            << loss << " K=" << classes << " standardize=" << standardize << " parameter " << i;
      }
    }
  }
}

TEST(LinearModel, LeastSquaresSolvesTheNormalEquations) {
  // Ridge on centred data: (X^T X / n + l2 I) w = X^T y / n, solved here by Gaussian elimination.
  const int64_t n = 400;
  const int64_t d = 4;
  auto data = table(n, d, 0, 11);
  auto rows = dataset_rows(data, shard(0, 1, true, d));
  const double l2 = 0.05;
  LinearOptions iterative = options("squared", l2);
  iterative.closed_form = false;
  const LinearFit by_lbfgs = fit_linear(*rows, nullptr, iterative);
  ASSERT_TRUE(by_lbfgs.solver.converged) << by_lbfgs.solver.stop;
  const LinearFit fit = fit_linear(*rows, nullptr, options("squared", l2));
  EXPECT_EQ(fit.solver.iterations, 0) << "solved in closed form";
  // The exact solution, with the intercept as an unpenalised column of ones.
  const int64_t m = d + 1;
  std::vector<double> a(static_cast<size_t>(m * (m + 1)), 0.0);
  std::vector<float> row(static_cast<size_t>(d + 1));
  for (int64_t i = 0; i < n; ++i) {
    data->read_into(i, row);
    std::vector<double> z(row.begin(), row.begin() + d);
    z.push_back(1.0);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < m; ++c) a[static_cast<size_t>(r * (m + 1) + c)] += z[r] * z[c] / n;
      a[static_cast<size_t>(r * (m + 1) + m)] += z[r] * row[static_cast<size_t>(d)] / n;
    }
  }
  for (int64_t r = 0; r < d; ++r) a[static_cast<size_t>(r * (m + 1) + r)] += l2;
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t r = c + 1; r < m; ++r) {
      const double f =
          a[static_cast<size_t>(r * (m + 1) + c)] / a[static_cast<size_t>(c * (m + 1) + c)];
      for (int64_t k = c; k <= m; ++k)
        a[static_cast<size_t>(r * (m + 1) + k)] -= f * a[static_cast<size_t>(c * (m + 1) + k)];
    }
  }
  std::vector<double> w(static_cast<size_t>(m));
  for (int64_t r = m - 1; r >= 0; --r) {
    double v = a[static_cast<size_t>(r * (m + 1) + m)];
    for (int64_t k = r + 1; k < m; ++k) v -= a[static_cast<size_t>(r * (m + 1) + k)] * w[k];
    w[static_cast<size_t>(r)] = v / a[static_cast<size_t>(r * (m + 1) + r)];
  }
  for (const LinearFit* f : {&fit, &by_lbfgs}) {
    for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(f->model.weights[j], w[j], 1e-4) << j;
    EXPECT_NEAR(f->model.intercept[0], w[d], 1e-4);
  }
}

// The closed form minimises L-BFGS's objective with and without an intercept and standardising,
// and singular equations (a feature always 0, no l2) fall back to L-BFGS.
TEST(LinearModel, TheClosedFormReachesLbfgssObjective) {
  auto data = table(500, 5, 0, 12, 2.0);
  auto rows = dataset_rows(data, shard(0, 1, true, 5));
  for (bool intercept : {true, false}) {
    for (bool standardize : {true, false}) {
      LinearOptions o = options("squared", 1e-2, standardize);
      o.fit_intercept = intercept;
      const LinearFit closed = fit_linear(*rows, nullptr, o);
      o.closed_form = false;
      const LinearFit iterated = fit_linear(*rows, nullptr, o);
      EXPECT_EQ(closed.solver.iterations, 0);
      // Both evaluate the objective with float32 products: they agree to that precision.
      EXPECT_NEAR(closed.objective, iterated.objective, 2e-7 * std::abs(iterated.objective))
          << "intercept " << intercept << ", standardize " << standardize;
      for (size_t j = 0; j < 5; ++j) {
        EXPECT_NEAR(closed.model.weights[j], iterated.model.weights[j], 1e-3);
      }
      EXPECT_NEAR(closed.model.intercept[0], iterated.model.intercept[0], 1e-3);
    }
  }
  // A column of zeros and no intercept: singular without l2.
  std::vector<float> x;
  for (int i = 0; i < 50; ++i) {
    const auto v = static_cast<float>(i % 7);
    x.insert(x.end(), {v, 0.0F, 2 * v});
  }
  auto zeros = std::make_shared<data::InMemoryDataset>(Tensor::from_vector(x, {50, 3}),
                                                       Tensor::zeros({50}, DType::kInt64));
  auto singular = dataset_rows(zeros, shard(0, 1, true, 2));
  LinearOptions o = options("squared", 0.0);
  o.fit_intercept = false;
  const LinearFit fit = fit_linear(*singular, nullptr, o);
  EXPECT_GT(fit.solver.iterations, 0) << "L-BFGS took over";
  EXPECT_LT(fit.objective, 1e-6) << "y = 2 x exactly";
}

TEST(LinearModel, SeveralProcessesFitOneProcessesModel) {
  for (const auto& [loss, classes] : std::vector<std::pair<std::string, int64_t>>{
           {"squared", 0}, {"logistic", 2}, {"logistic", 3}, {"squared_hinge", 2}}) {
    auto data = table(1000, 6, classes, 5, 1.0);
    const bool regression = classes == 0;
    auto one_rows = dataset_rows(data, shard(0, 1, regression, 6, 128));
    const LinearFit one = fit_linear(*one_rows, nullptr, options(loss, 1e-3, true));
    ASSERT_TRUE(one.solver.converged) << loss << ": " << one.solver.stop;
    const std::string name = loss;  // clang before 16 cannot capture a structured binding
    for (int ranks : {2, 4}) {
      std::vector<LinearFit> fits(static_cast<size_t>(ranks));
      comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
        auto rows = dataset_rows(data, shard(group.rank(), ranks, regression, 6, 100));
        fits[static_cast<size_t>(group.rank())] =
            fit_linear(*rows, &group, options(name, 1e-3, true));
      });
      for (int r = 0; r < ranks; ++r) {
        const LinearFit& f = fits[static_cast<size_t>(r)];
        EXPECT_EQ(f.rows, 1000);
        EXPECT_NEAR(f.objective, one.objective, 1e-6 * std::abs(one.objective))
            << loss << " K=" << classes << ", " << ranks << " ranks, rank " << r;
        EXPECT_EQ(f.model.weights, fits[0].model.weights) << "every rank holds the same model";
      }
    }
  }
}

// With l1 the fit is the lasso's (elastic net's with l2): at the optimum every zero weight's
// gradient is within l1, every other weight's gradient is -l1 times its sign. Checked on the
// standardised problem's parameters, for least squares and logistic regression, and 2 and 4
// processes reach one process's objective.
TEST(LinearModel, L1FitsMeetTheLassosOptimalityConditions) {
  for (const auto& [loss, classes] :
       std::vector<std::pair<std::string, int64_t>>{{"squared", 0}, {"logistic", 2}}) {
    auto data = table(1500, 8, classes, 9, 0.5);
    const bool regression = classes == 0;
    LinearOptions o = options(loss, 1e-3, true);
    o.l1 = regression ? 0.3 : 0.1;
    // The objective is evaluated in float32 products: below this relative decrease it is noise.
    o.solver.value_tolerance = 1e-10;
    auto rows = dataset_rows(data, shard(0, 1, regression, 8, 128));
    const LinearFit fit = fit_linear(*rows, nullptr, o);
    ASSERT_TRUE(fit.solver.converged) << loss << ": " << fit.solver.stop;
    LinearProblem problem(*rows, nullptr, o);
    std::vector<double> g;
    (void)problem(fit.solver.x, g);
    int zeros = 0;
    for (int64_t j = 0; j < 8; ++j) {
      const double w = fit.solver.x[static_cast<size_t>(j)];
      if (w == 0) {
        ++zeros;
        EXPECT_LE(std::abs(g[static_cast<size_t>(j)]), o.l1 + 1e-5) << loss << " weight " << j;
      } else {
        EXPECT_NEAR(g[static_cast<size_t>(j)], -o.l1 * (w > 0 ? 1 : -1), 1e-5)
            << loss << " weight " << j;
      }
    }
    EXPECT_GT(zeros, 0) << loss << ": the penalty zeroes the weakest weights";
    EXPECT_LT(zeros, 8) << loss;
    if (regression) {
      // Least squares went by coordinate descent on the normal equations; OWL-QN over the rows
      // finds the same minimum.
      EXPECT_NE(fit.solver.stop.find("coordinate descent"), std::string::npos) << fit.solver.stop;
      LinearOptions iterative = o;
      iterative.closed_form = false;
      const LinearFit by_owlqn = fit_linear(*rows, nullptr, iterative);
      ASSERT_TRUE(by_owlqn.solver.converged) << by_owlqn.solver.stop;
      EXPECT_NEAR(by_owlqn.objective, fit.objective, 1e-6 * std::abs(fit.objective));
    }
    for (int ranks : {2, 4}) {
      std::vector<LinearFit> fits(static_cast<size_t>(ranks));
      comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
        auto mine = dataset_rows(data, shard(group.rank(), ranks, regression, 8, 100));
        LinearOptions same = o;
        fits[static_cast<size_t>(group.rank())] = fit_linear(*mine, &group, same);
      });
      for (const LinearFit& f : fits) {
        EXPECT_NEAR(f.objective, fit.objective, 1e-6 * std::abs(fit.objective))
            << loss << ", " << ranks << " ranks";
      }
    }
  }
}

TEST(LinearModel, LearnsTheGeneratorsClasses) {
  auto train = table(4000, 8, 3, 21);
  auto rows = dataset_rows(train, shard(0, 1, false, 8, 512));
  const LinearFit fit = fit_linear(*rows, nullptr, options("logistic", 1e-4));
  const PredictionScore score = score_linear(fit.model, *rows, nullptr);
  EXPECT_EQ(score.rows, 4000);
  // Gumbel noise on margins that spread over several units: most rows keep their class.
  EXPECT_GT(score.accuracy, 0.8);
  EXPECT_LT(score.log_loss, 0.6);
}

// The bytes of a fitted model read back as the same model, and bytes that cannot be one are
// refused naming their source.
TEST(LinearModel, ItsBytesReadBackAndBadBytesAreRefused) {
  auto train = table(600, 4, 3, 5);
  auto rows = dataset_rows(train, shard(0, 1, false, 4));
  const LinearModel model = fit_linear(*rows, nullptr, options("logistic", 1e-3)).model;
  std::ostringstream out;
  BinaryWriter w(out);
  model.write(w);
  const std::string bytes = out.str();
  std::istringstream in(bytes);
  BinaryReader r(in, "model.ckpt");
  const LinearModel back = LinearModel::read(r);
  EXPECT_EQ(back.loss, model.loss);
  EXPECT_EQ(back.features, 4);
  EXPECT_EQ(back.classes, 3);
  EXPECT_EQ(back.outputs, 3);
  EXPECT_EQ(back.weights, model.weights);
  EXPECT_EQ(back.intercept, model.intercept);

  const auto refused = [](const std::string& b, const std::string& part) {
    std::istringstream bad(b);
    BinaryReader reader(bad, "model.ckpt");
    try {
      (void)LinearModel::read(reader);
      ADD_FAILURE() << "accepted: " << part;
    } catch (const FormatError& e) {
      EXPECT_TRUE(testing::contains(e.what(), "model.ckpt")) << e.what();
      EXPECT_TRUE(testing::contains(e.what(), part)) << e.what();
    }
  };
  refused(bytes.substr(0, bytes.size() - 3), "");
  // A multinomial model of 3 classes with 1 output: the counts disagree.
  const size_t outputs_at = 4 + 8 + model.loss.size() + 8 + 8;
  std::string one_output = bytes;
  one_output[outputs_at] = 1;
  refused(one_output, "3 classes and 1 outputs");
  // A feature count that would need more bytes than there are, refused before allocating.
  std::string huge = bytes;
  huge[4 + 8 + model.loss.size() + 3] = 1;
  refused(huge, "weights need");
}

TEST(LinearModel, ABadLabelNamesItsRow) {
  std::vector<float> x{1, 2.5F, 3, 4, 5, 6};
  auto data = std::make_shared<data::InMemoryDataset>(
      Tensor::from_vector(x, {3, 2}), Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}));
  data->set_origin({.file = "labels.csv", .lines = {2, 3, 4}});
  auto rows = dataset_rows(data, shard(0, 1, false, 2));
  try {
    (void)fit_linear(*rows, nullptr, options("squared_hinge", 0.0));
    FAIL() << "label 2 accepted for a binary loss";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "labels.csv:4")) << e.what();
    EXPECT_TRUE(testing::contains(e.what(), "is not 0 or 1")) << e.what();
  }
  // The second column as the target: 2.5 is no class.
  auto column = dataset_rows(data, shard(0, 1, true, 1));
  try {
    (void)fit_linear(*column, nullptr, options("logistic", 0.0));
    FAIL() << "label 2.5 accepted";
  } catch (const FormatError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "labels.csv:2")) << e.what();
  }
}

TEST(LinearModel, OneClassIsAClearError) {
  std::vector<float> x{1, 2, 3};
  auto data = std::make_shared<data::InMemoryDataset>(
      Tensor::from_vector(x, {3, 1}), Tensor::from_vector(std::vector<int64_t>{0, 0, 0}, {3}));
  auto rows = dataset_rows(data, shard(0, 1, false, 1));
  try {
    (void)fit_linear(*rows, nullptr, options("logistic", 0.0));
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_TRUE(testing::contains(e.what(), "two classes")) << e.what();
  }
}

}  // namespace
}  // namespace tessera::estimators
