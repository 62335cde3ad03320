#include "tessera/estimators/boosted_trees.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "collective.h"
#include "feature_bins.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tree_grower.h"

namespace tessera::estimators {
namespace {

constexpr int64_t kMaxBoostClasses = int64_t{1} << 20;
// The least hessian of a row (XGBoost's): a confident row still weighs something.
constexpr double kMinHessian = 1e-16;
// The least probability a class prior starts from.
constexpr double kMinPrior = 1e-7;
// Rows a thread takes at once in the passes over every row.
constexpr int64_t kRowGrain = 4096;

// fn(begin, end) over [0, n) on the process's threads.
void for_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  parallel_for(n, kRowGrain, fn);
}

void check_boost_options(const BoostedTreesOptions& o) {
  const auto fail = [](const std::string& what) { throw ValueError("boosted trees: " + what); };
  if (o.objective != "regression" && o.objective != "binary" && o.objective != "multiclass") {
    fail("objective \"" + o.objective + "\" is not one of: regression, binary, multiclass");
  }
  if (o.grow_policy != "depthwise" && o.grow_policy != "lossguide") {
    fail("grow_policy \"" + o.grow_policy + "\" is not one of: depthwise, lossguide");
  }
  if (o.rounds < 1) fail(detail::concat("rounds ", o.rounds, " must be at least 1"));
  if (!(o.learning_rate > 0 && o.learning_rate <= 1)) {
    fail(detail::concat("learning_rate ", o.learning_rate, " is not in (0, 1]"));
  }
  if (o.max_depth < 0 || (o.max_depth == 0 && o.grow_policy == "depthwise")) {
    fail(detail::concat("max_depth ", o.max_depth, " must be at least 1 (0: no limit, lossguide)"));
  }
  if (o.max_leaves < 0 || o.max_leaves == 1) {
    fail(detail::concat("max_leaves ", o.max_leaves, " must be 0 (no limit) or at least 2"));
  }
  if (!(o.min_child_weight >= 0) || !(o.reg_lambda >= 0) || !(o.reg_alpha >= 0) ||
      !(o.min_split_loss >= 0)) {
    fail("min_child_weight, reg_lambda, reg_alpha and min_split_loss must be >= 0");
  }
  if (!(o.subsample > 0 && o.subsample <= 1) ||
      !(o.colsample_bynode > 0 && o.colsample_bynode <= 1)) {
    fail(detail::concat("subsample ", o.subsample, " and colsample_bynode ", o.colsample_bynode,
                        " must lie in (0, 1]"));
  }
  if (o.parallel_trees < 1) {
    fail(detail::concat("parallel_trees ", o.parallel_trees, " must be at least 1"));
  }
  if (!(o.validation_fraction >= 0 && o.validation_fraction < 1)) {
    fail(detail::concat("validation_fraction ", o.validation_fraction, " is not in [0, 1)"));
  }
  if (o.early_stopping_rounds < 0 || (o.early_stopping_rounds > 0 && o.validation_fraction == 0)) {
    fail("early_stopping_rounds needs validation_fraction > 0 (the rows it watches)");
  }
}

// A power of two that scales values of magnitude at most `largest`, `count` of them, to integers
// whose sum stays below 2^52.
double integer_scale(double largest, double count) {
  if (!(largest > 0)) return 1.0;
  int exponent = 0;
  std::frexp(0x1.0p52 / (largest * std::max(count, 1.0)), &exponent);
  return std::ldexp(1.0, exponent - 1);
}

// The label's class, or a FormatError naming its row.
void check_label(const RowSource& rows, const std::string& objective, int64_t index, double y) {
  const auto fail = [&](const std::string& why) {
    throw FormatError(detail::concat(rows.origin(index), ": label ", y, " ", why));
  };
  if (objective == "regression") {
    if (!std::isfinite(y)) fail("is not a finite number");
  } else if (objective == "binary") {
    if (y != 0.0 && y != 1.0) fail("is not 0 or 1: objective \"binary\" separates two classes");
  } else if (!(y >= 0 && y < static_cast<double>(kMaxBoostClasses)) || y != std::floor(y)) {
    fail(detail::concat("is no class: objective \"multiclass\" takes labels 0, 1, ..., below ",
                        kMaxBoostClasses));
  }
}

// The mean loss of margins [rows, k] against targets: squared error, log loss or softmax loss.
double boost_row_loss(const std::string& objective, const double* m, int64_t k, double y) {
  if (objective == "regression") return (m[0] - y) * (m[0] - y);
  if (objective == "binary") {
    const double v = y == 1.0 ? m[0] : -m[0];
    return v > 0 ? std::log1p(std::exp(-v)) : -v + std::log1p(std::exp(v));
  }
  const double top = *std::max_element(m, m + k);
  double total = 0.0;
  for (int64_t c = 0; c < k; ++c) total += std::exp(m[c] - top);
  return top + std::log(total) - m[static_cast<int64_t>(y)];
}

// The mean loss over every process's rows (for "regression", the root of the mean squared error).
double boost_mean_loss(const std::string& objective, const std::vector<double>& margins, int64_t k,
                       const BinnedRows& rows, comm::ProcessGroup* group) {
  // Each stretch of kRowGrain rows summed apart, then the stretches in order: the same sum on
  // any number of threads.
  const int64_t n = rows.rows();
  std::vector<double> parts(static_cast<size_t>((n + kRowGrain - 1) / kRowGrain), 0.0);
  parallel_for(static_cast<int64_t>(parts.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t r = p * kRowGrain; r < std::min(n, (p + 1) * kRowGrain); ++r) {
        parts[static_cast<size_t>(p)] +=
            boost_row_loss(objective, margins.data() + r * k, k, rows.y[static_cast<size_t>(r)]);
      }
    }
  });
  std::vector<double> sums{0.0, static_cast<double>(n)};
  for (double p : parts) sums[0] += p;
  sum_over(group, sums);
  const double mean = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  return objective == "regression" ? std::sqrt(mean) : mean;
}

// Each output's gradient and hessian for every row, [rows, k] row-major each; returns each
// output's largest |gradient| and hessian of this process's rows, [k, 2].
std::vector<double> gradients(const std::string& objective, const std::vector<double>& margins,
                              int64_t k, const BinnedRows& rows, std::vector<double>& g,
                              std::vector<double>& h) {
  const int64_t n = rows.rows();
  g.resize(static_cast<size_t>(n * k));
  h.resize(g.size());
  std::vector<double> largest(static_cast<size_t>(2 * k), 0.0);
  std::mutex largest_mutex;
  const bool regression = objective == "regression";
  const bool binary = objective == "binary";
  for_rows(n, [&](int64_t begin, int64_t end) {
    std::vector<double> mine(largest.size(), 0.0);
    for (int64_t r = begin; r < end; ++r) {
      const double y = rows.y[static_cast<size_t>(r)];
      const double* m = margins.data() + r * k;
      double* gr = g.data() + r * k;
      double* hr = h.data() + r * k;
      if (regression) {
        gr[0] = m[0] - y;
        hr[0] = 1.0;
      } else if (binary) {
        const double p = 1.0 / (1.0 + std::exp(-m[0]));
        gr[0] = p - y;
        hr[0] = std::max(p * (1.0 - p), kMinHessian);
      } else {
        const double top = *std::max_element(m, m + k);
        double total = 0.0;
        for (int64_t c = 0; c < k; ++c) total += std::exp(m[c] - top);
        for (int64_t c = 0; c < k; ++c) {
          const double p = std::exp(m[c] - top) / total;
          gr[c] = p - (c == static_cast<int64_t>(y) ? 1.0 : 0.0);
          hr[c] = std::max(2.0 * p * (1.0 - p), kMinHessian);
        }
      }
      for (int64_t c = 0; c < k; ++c) {
        mine[static_cast<size_t>(2 * c)] =
            std::max(mine[static_cast<size_t>(2 * c)], std::abs(gr[c]));
        mine[static_cast<size_t>(2 * c + 1)] =
            std::max(mine[static_cast<size_t>(2 * c + 1)], hr[c]);
      }
    }
    const std::lock_guard lock(largest_mutex);
    for (size_t i = 0; i < largest.size(); ++i) largest[i] = std::max(largest[i], mine[i]);
  });
  return largest;
}

// The margins before any tree: the mean target, or the log odds of each class's share.
std::vector<double> base_margin(const std::string& objective, int64_t k, const BinnedRows& rows,
                                int64_t total_rows, comm::ProcessGroup* group) {
  const auto n = static_cast<double>(total_rows);
  if (objective == "regression") {
    std::vector<double> largest{0.0};
    for (double y : rows.y) largest[0] = std::max(largest[0], std::abs(y));
    sum_over(group, largest, comm::ReduceOp::kMax);
    const double scale = integer_scale(largest[0], n);
    std::vector<double> sum{0.0};  // of integers: the same sum however the rows are split
    for (double y : rows.y) sum[0] += std::nearbyint(y * scale);
    sum_over(group, sum);
    return {sum[0] / scale / n};
  }
  std::vector<double> counts(static_cast<size_t>(k == 1 ? 2 : k), 0.0);
  for (double y : rows.y) counts[static_cast<size_t>(y)] += 1.0;
  sum_over(group, counts);
  if (objective == "binary") {
    const double p = std::clamp(counts[1] / n, kMinPrior, 1.0 - kMinPrior);
    return {std::log(p / (1.0 - p))};
  }
  std::vector<double> margin(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) {
    margin[static_cast<size_t>(c)] =
        std::log(std::max(counts[static_cast<size_t>(c)] / n, kMinPrior));
  }
  return margin;
}

GrowOptions grow_options(const BoostedTreesOptions& o) {
  GrowOptions g;
  g.max_depth = o.max_depth;
  g.max_leaves = o.max_leaves;
  g.loss_guided = o.grow_policy == "lossguide";
  g.min_child_weight = o.min_child_weight;
  g.reg_lambda = o.reg_lambda;
  g.reg_alpha = o.reg_alpha;
  g.min_split_loss = o.min_split_loss;
  g.learning_rate = o.learning_rate / static_cast<double>(o.parallel_trees);
  g.subsample = o.subsample;
  g.colsample_bynode = o.colsample_bynode;
  g.seed = o.seed;
  return g;
}

// The classes (0 for a regression) of every process's labels, which are checked.
int64_t count_classes(const RowSource& source, const std::string& objective,
                      const BinnedRows& train, const BinnedRows& held_out,
                      comm::ProcessGroup* group) {
  std::vector<double> largest{0.0};
  for (const BinnedRows* set : {&train, &held_out}) {
    for (int64_t r = 0; r < set->rows(); ++r) {
      const double y = set->y[static_cast<size_t>(r)];
      check_label(source, objective, set->index[static_cast<size_t>(r)], y);
      largest[0] = std::max(largest[0], y);
    }
  }
  if (objective == "regression") return 0;
  if (objective == "binary") return 2;
  sum_over(group, largest, comm::ReduceOp::kMax);
  const auto classes = static_cast<int64_t>(largest[0]) + 1;
  if (classes < 2) {
    throw ValueError("boosted trees: every label is 0: a classifier needs two classes at least");
  }
  return classes;
}

// One round: a tree per output from the margins' gradients, added to both sets' margins.
void boost_round(BoostedTreesModel& model, const BoostedTreesOptions& o, const FeatureBins& bins,
                 const BinnedRows& train, const BinnedRows& held_out, int64_t total_rows,
                 std::vector<double>& train_margins, std::vector<double>& held_margins,
                 HistogramPool& pool, comm::ProcessGroup* group) {
  const int64_t k = model.outputs();
  std::vector<double> g;
  std::vector<double> h;
  std::vector<double> largest = gradients(o.objective, train_margins, k, train, g, h);
  sum_over(group, largest, comm::ReduceOp::kMax);
  std::vector<GradientPair> pairs(static_cast<size_t>(train.rows()));
  GrowOptions grow = grow_options(o);
  for (int64_t t = 0; t < o.parallel_trees * k; ++t) {
    const int64_t c = t % k;
    grow.tree = model.trees.size();
    const auto n = static_cast<double>(total_rows);
    const double g_scale = integer_scale(largest[static_cast<size_t>(2 * c)], n);
    const double h_scale = integer_scale(largest[static_cast<size_t>(2 * c + 1)], n);
    for_rows(train.rows(), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const auto at = static_cast<size_t>(r * k + c);
        pairs[static_cast<size_t>(r)] = {std::nearbyint(g[at] * g_scale),
                                         std::nearbyint(h[at] * h_scale)};
      }
    });
    GrownTree grown = grow_tree(train, bins, pairs, g_scale, h_scale, grow, group, pool);
    const std::vector<TreeNode>& nodes = grown.tree.nodes;
    for_rows(train.rows(), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        train_margins[static_cast<size_t>(r * k + c)] +=
            nodes[static_cast<size_t>(grown.leaf_of_row[static_cast<size_t>(r)])].value;
      }
    });
    for_rows(held_out.rows(), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        held_margins[static_cast<size_t>(r * k + c)] +=
            nodes[static_cast<size_t>(binned_leaf(grown.tree, held_out.row(r)))].value;
      }
    });
    model.trees.push_back(std::move(grown.tree));
  }
}

}  // namespace

BoostedTreesFit fit_boosted_trees(RowSource& rows, comm::ProcessGroup* group,
                                  const BoostedTreesOptions& options) {
  check_boost_options(options);
  check_every_process_has_rows(rows, group, "boosted trees");
  const FeatureBins bins = find_feature_bins(rows, group, options.max_bins, options.seed);
  BinnedRows train;
  BinnedRows held_out;
  bin_rows(rows, bins, options.validation_fraction, options.seed, train, held_out);
  BoostedTreesFit fit;
  BoostedTreesModel& model = fit.model;
  model.objective = options.objective;
  model.features = rows.num_features();
  model.classes = count_classes(rows, options.objective, train, held_out, group);
  std::vector<double> counts{static_cast<double>(train.rows()),
                             static_cast<double>(held_out.rows())};
  sum_over(group, counts);
  fit.rows = static_cast<int64_t>(counts[0]);
  if (fit.rows == 0) throw ValueError("boosted trees: every row is held out for validation");
  if (options.validation_fraction > 0 && counts[1] == 0) {
    throw ValueError(detail::concat("boosted trees: validation_fraction ",
                                    options.validation_fraction, " held out none of the ", fit.rows,
                                    " rows"));
  }
  const int64_t k = model.outputs();
  model.base_margin = base_margin(options.objective, k, train, fit.rows, group);
  std::vector<double> train_margins(static_cast<size_t>(train.rows() * k));
  std::vector<double> held_margins(static_cast<size_t>(held_out.rows() * k));
  for (size_t i = 0; i < train_margins.size(); ++i) train_margins[i] = model.base_margin[i % k];
  for (size_t i = 0; i < held_margins.size(); ++i) held_margins[i] = model.base_margin[i % k];
  const bool watching = counts[1] > 0;
  double best = std::numeric_limits<double>::infinity();
  HistogramPool pool;
  fit.stop = "rounds done";
  for (int64_t round = 1; round <= options.rounds; ++round) {
    boost_round(model, options, bins, train, held_out, fit.rows, train_margins, held_margins, pool,
                group);
    fit.rounds = round;
    if (!watching) {
      fit.best_round = round;
      // The training loss is a pass over the rows: every tenth round, the first and the last.
      if (round == 1 || round % 10 == 0 || round == options.rounds) {
        best = boost_mean_loss(options.objective, train_margins, k, train, group);
        if (options.on_round) options.on_round(round, best);
      }
      continue;
    }
    const double loss = boost_mean_loss(options.objective, held_margins, k, held_out, group);
    if (options.on_round) options.on_round(round, loss);
    if (loss < best || options.early_stopping_rounds == 0) {
      best = loss;
      fit.best_round = round;
    } else if (options.early_stopping_rounds > 0 &&
               round - fit.best_round >= options.early_stopping_rounds) {
      fit.stop =
          detail::concat("no better held-out loss in ", options.early_stopping_rounds, " rounds");
      break;
    }
  }
  fit.loss = best;
  model.trees.resize(static_cast<size_t>(fit.best_round * options.parallel_trees * k));
  return fit;
}

}  // namespace tessera::estimators
