#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/prediction_score.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// One node of a decision tree over dense float features.
struct TreeNode {
  int32_t feature = -1;  // -1: a leaf
  // A value goes left when it is below the threshold (its bin, in training's quantised rows, at
  // most `bin`); a missing one (NaN) goes left when default_left.
  float threshold = 0.0F;
  int32_t bin = 0;
  bool default_left = false;
  int32_t left = -1;
  int32_t right = -1;
  double value = 0.0;  // a leaf's output, the learning rate applied
};

struct Tree {
  std::vector<TreeNode> nodes;  // nodes[0] is the root
  // The leaf a row of `features` values reaches.
  [[nodiscard]] const TreeNode& leaf(const float* row) const;
};

// Gradient-boosted trees on histograms, XGBoost's `hist` method with its parameter names and
// defaults: each feature is cut once into at most max_bins bins of equal weight (exactly, from its
// distinct values, when it has few; else from a sample of rows drawn by row index), then every
// tree is grown from per-bin sums of the gradients, summed over the processes by one allreduce a
// level. Gradients are summed as integers (scaled to 2^52 over the whole sum), so any split of the
// rows over processes grows the same trees, bit for bit.
struct BoostedTreesOptions {
  // "regression" (squared error) | "binary" (logistic, labels 0 and 1) | "multiclass" (softmax,
  // one tree per class a round).
  std::string objective = "multiclass";
  int64_t rounds = 100;
  double learning_rate = 0.3;
  int64_t max_depth = 6;                  // "depthwise": levels; "lossguide": 0 is no limit
  std::string grow_policy = "depthwise";  // or "lossguide": split the best leaf first
  int64_t max_leaves = 0;                 // "lossguide": 0 is no limit
  int64_t max_bins = 255;
  double min_child_weight = 1.0;  // least hessian sum in a child
  double reg_lambda = 1.0;        // L2 on leaf values
  double reg_alpha = 0.0;         // L1 on leaf values
  double min_split_loss = 0.0;    // least gain of a split (XGBoost's gamma)
  // Each tree grows on this share of the rows and each split looks at this share of the features,
  // drawn afresh per tree and per node by keys of the seed, the tree, and the row or node.
  double subsample = 1.0;
  double colsample_bynode = 1.0;
  // Trees grown side by side each round (per output), their leaves divided among them: with one
  // round and a learning rate of 1, a random forest (XGBoost's num_parallel_tree).
  int64_t parallel_trees = 1;
  // > 0: this share of the rows (drawn by row index and seed) is held out, and boosting stops once
  // their loss has not improved for early_stopping_rounds rounds; the model keeps the best round.
  double validation_fraction = 0.0;
  int64_t early_stopping_rounds = 0;
  uint64_t seed = 0;
  // Called with the round (from 1) and the held-out rows' mean loss after every round when some
  // are held out; else with the mean training loss after the first, every tenth and the last.
  std::function<void(int64_t, double)> on_round;
};

struct BoostedTreesModel {
  std::string objective;
  int64_t features = 0;
  int64_t classes = 0;              // 0 for "regression"
  std::vector<double> base_margin;  // one per output: the margin before any tree
  std::vector<Tree> trees;          // round by round, then parallel tree, then output

  [[nodiscard]] int64_t outputs() const { return objective == "multiclass" ? classes : 1; }
  // Margins of the rows of x, [rows, outputs()] row-major.
  [[nodiscard]] std::vector<double> margins(const Tensor& x) const;
  // One prediction per row (a class as a number, or a value) and, for a classifier, each class's
  // probability, [rows, classes].
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const;

  void write(BinaryWriter& out) const;
  [[nodiscard]] static BoostedTreesModel read(BinaryReader& in);
};

struct BoostedTreesFit {
  BoostedTreesModel model;
  int64_t rows = 0;        // the rows trained on, over every process (less those held out)
  int64_t rounds = 0;      // grown
  int64_t best_round = 0;  // kept
  double loss = 0.0;       // the mean training loss at the kept round (held-out loss if any)
  std::string stop;
};

// The model's scores on rows, summed over `group` (every process gets them): accuracy and mean log
// loss for a classifier (probabilities clipped at float64's epsilon, as scikit-learn's log_loss
// does), RMSE and R^2 for a regression.
[[nodiscard]] PredictionScore score_boosted_trees(const BoostedTreesModel& model, RowSource& rows,
                                                  comm::ProcessGroup* group);

// Fits on every process's rows (each holding only their quantised form, a byte per value) with the
// same trees on every process. Throws ValueError for bad options or a process without rows, and
// FormatError naming the row's origin for a label the objective cannot use.
[[nodiscard]] BoostedTreesFit fit_boosted_trees(RowSource& rows, comm::ProcessGroup* group,
                                                const BoostedTreesOptions& options);

}  // namespace tessera::estimators
