#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "feature_bins.h"
#include "tessera/comm/process_group.h"
#include "tessera/estimators/boosted_trees.h"

namespace tessera::estimators {

// A row's gradient and hessian as integers (in doubles, exact below 2^53), or a sum of them: sums
// in any order are equal, so a histogram summed over processes does not depend on how the rows
// were split.
struct GradientPair {
  double g = 0.0;
  double h = 0.0;
};

struct GrowOptions {
  int64_t max_depth = 6;   // 0: no limit
  int64_t max_leaves = 0;  // 0: no limit
  bool loss_guided = false;
  double min_child_weight = 1.0;
  double reg_lambda = 1.0;
  double reg_alpha = 0.0;
  double min_split_loss = 0.0;
  double learning_rate = 0.3;
  // The share of the rows the tree grows on, and of the features each node's split may use,
  // drawn by keys of (seed, tree, row index) and (seed, tree, node): the same on any process.
  double subsample = 1.0;
  double colsample_bynode = 1.0;
  uint64_t seed = 0;
  uint64_t tree = 0;
};

// Histograms kept from tree to tree: growing takes and gives them back rather than asking the
// system for fresh memory (and its page faults) for every node.
struct HistogramPool {
  std::vector<std::vector<double>> spare;
  std::vector<double> received;  // the sums of a level's histograms, of this process's features
  // A level's histograms, each process's features apart, in at least `count` doubles of the
  // group's memory (ProcessGroup::allocate), where the shared-memory backend sums them in place.
  double* send(size_t count, comm::ProcessGroup& group);
  std::vector<double> take() {
    if (spare.empty()) return {};
    std::vector<double> h = std::move(spare.back());
    spare.pop_back();
    return h;
  }
  void give(std::vector<double>&& h) {
    if (h.capacity() > 0) spare.push_back(std::move(h));
  }

 private:
  std::shared_ptr<std::byte[]> send_;
  size_t send_count_ = 0;
};

// A grown tree and the leaf each of this process's rows reaches (those it was not grown on too).
struct GrownTree {
  Tree tree;
  std::vector<int32_t> leaf_of_row;
};

// Grows one tree on this process's quantised rows from their gradient pairs, which are the true
// ones times g_scale and h_scale; the histograms of each level are summed over `group` (each
// process keeps its stretch of the features by one reduce-scatter), and every process grows the
// same tree. Histograms come from, and go back to, `pool`.
[[nodiscard]] GrownTree grow_tree(const BinnedRows& rows, const FeatureBins& bins,
                                  std::span<const GradientPair> gradients, double g_scale,
                                  double h_scale, const GrowOptions& options,
                                  comm::ProcessGroup* group, HistogramPool& pool);

// The leaf of `tree` a quantised row reaches.
[[nodiscard]] int32_t binned_leaf(const Tree& tree, const uint8_t* row);

}  // namespace tessera::estimators
