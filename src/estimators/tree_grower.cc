#include "tree_grower.h"

#include <algorithm>
#include <cmath>

#include "collective.h"
#include "tessera/core/random.h"
#include "tessera/core/thread_pool.h"

namespace tessera::estimators {
namespace {

// A split must gain more than this (XGBoost's kRtEps): less is rounding.
constexpr double kMinGain = 1e-6;
// A node's rows split over the threads (each its own histogram) when they hold this many values
// per histogram entry; fewer, its features are.
constexpr int64_t kRowsPerBinToSplitRows = 32;
// Rows a thread partitions at once.
constexpr int64_t kPartitionRows = 16384;
// Streams of the keyed draws: which rows a tree grows on, which features a node may split.
constexpr uint64_t kRowStream = 3;
constexpr uint64_t kFeatureStream = 4;

GradientPair operator+(GradientPair a, GradientPair b) { return {a.g + b.g, a.h + b.h}; }
GradientPair operator-(GradientPair a, GradientPair b) { return {a.g - b.g, a.h - b.h}; }

struct Split {
  double gain = 0.0;
  int32_t feature = -1;  // -1: none
  int32_t bin = 0;
  bool default_left = false;
  GradientPair left;
};

// A leaf that may still be split: its rows (a stretch of the grower's row order), their sums and
// histogram (two doubles a bin: gradients, hessians) over every process, and its best split.
struct OpenNode {
  int32_t id = 0;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t depth = 0;
  GradientPair total;
  std::vector<double> histogram;
  Split split;
};

class Grower {
 public:
  Grower(const BinnedRows& rows, const FeatureBins& bins, std::span<const GradientPair> gradients,
         double g_scale, double h_scale, const GrowOptions& options, comm::ProcessGroup* group,
         HistogramPool& pool)
      : rows_(rows),
        bins_(bins),
        gradients_(gradients),
        g_scale_(g_scale),
        h_scale_(h_scale),
        o_(options),
        group_(group),
        pool_(pool),
        tree_key_(mix64(options.seed ^ mix64(options.tree))) {
    for (int64_t r = 0; r < rows.rows(); ++r) {
      if (o_.subsample >= 1.0 ||
          keyed_uniform(tree_key_, kRowStream,
                        static_cast<uint64_t>(rows.index[static_cast<size_t>(r)])) < o_.subsample) {
        order_.push_back(static_cast<int32_t>(r));
      }
    }
    spill_.resize(order_.size());
    slice_features();
  }

  GrownTree grow() {
    result_.leaf_of_row.assign(static_cast<size_t>(rows_.rows()), -1);
    result_.tree.nodes.emplace_back();
    std::vector<OpenNode> open(1);
    open[0].end = static_cast<int64_t>(order_.size());
    std::vector<double> total{0.0, 0.0};
    for (int32_t r : order_) {
      total[0] += gradients_[static_cast<size_t>(r)].g;
      total[1] += gradients_[static_cast<size_t>(r)].h;
    }
    sum_over(group_, total);
    open[0].total = {total[0], total[1]};
    build_histograms(open, {0});
    open[0].split = best_split(open[0]);
    agree_on_splits(open);
    if (o_.loss_guided) {
      grow_loss_guided(open);
    } else {
      grow_depthwise(open);
    }
    find_leaves_of_rows();
    return std::move(result_);
  }

 private:
  [[nodiscard]] bool may_split(const OpenNode& n) const { return n.split.feature >= 0; }

  void grow_depthwise(std::vector<OpenNode>& level) {
    int64_t leaves = static_cast<int64_t>(level.size());
    while (!level.empty()) {
      std::vector<OpenNode> splitting;
      for (OpenNode& n : level) {
        if (may_split(n) && (o_.max_leaves == 0 || leaves < o_.max_leaves)) {
          ++leaves;
          splitting.push_back(std::move(n));
        } else {
          make_leaf(n);
        }
      }
      level = expand(splitting);
    }
  }

  void grow_loss_guided(std::vector<OpenNode>& open) {
    int64_t leaves = 1;
    while (o_.max_leaves == 0 || leaves < o_.max_leaves) {
      auto best = open.end();
      for (auto n = open.begin(); n != open.end(); ++n) {
        if (may_split(*n) && (best == open.end() || n->split.gain > best->split.gain)) best = n;
      }
      if (best == open.end()) break;
      std::vector<OpenNode> parent;
      parent.push_back(std::move(*best));
      open.erase(best);
      for (OpenNode& child : expand(parent)) open.push_back(std::move(child));
      ++leaves;
    }
    for (OpenNode& n : open) make_leaf(n);
  }

  // Splits each parent in two: its rows partitioned, the smaller child's histogram built and
  // summed over the processes (all the parents' at once), the other's its parent's less it.
  std::vector<OpenNode> expand(std::vector<OpenNode>& parents) {
    std::vector<OpenNode> children(2 * parents.size());
    std::vector<size_t> built;
    const std::vector<int64_t> middles = partition(parents);
    for (size_t p = 0; p < parents.size(); ++p) {
      OpenNode& parent = parents[p];
      OpenNode& left = children[2 * p];
      OpenNode& right = children[2 * p + 1];
      const int64_t middle = middles[p];
      left.id = static_cast<int32_t>(result_.tree.nodes.size());
      right.id = left.id + 1;
      result_.tree.nodes.resize(result_.tree.nodes.size() + 2);
      TreeNode& node = result_.tree.nodes[static_cast<size_t>(parent.id)];
      const Split& s = parent.split;
      node.feature = s.feature;
      node.bin = s.bin;
      node.threshold = bins_.upper[static_cast<size_t>(s.feature)][static_cast<size_t>(s.bin - 1)];
      node.default_left = s.default_left;
      node.left = left.id;
      node.right = right.id;
      left.begin = parent.begin;
      left.end = middle;
      right.begin = middle;
      right.end = parent.end;
      left.depth = right.depth = parent.depth + 1;
      left.total = s.left;
      right.total = parent.total - s.left;
      built.push_back(left.total.h <= right.total.h ? 2 * p : 2 * p + 1);
    }
    build_histograms(children, built);
    for (size_t p = 0; p < parents.size(); ++p) {
      const size_t small = built[p];
      OpenNode& other = children[small ^ 1U];
      other.histogram = std::move(parents[p].histogram);
      const std::vector<double>& known = children[small].histogram;
      for (size_t i = 0; i < other.histogram.size(); ++i) other.histogram[i] -= known[i];
    }
    parallel_for(static_cast<int64_t>(children.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        OpenNode& child = children[static_cast<size_t>(c)];
        if (o_.max_depth == 0 || child.depth < o_.max_depth) child.split = best_split(child);
      }
    });
    agree_on_splits(children);
    return children;
  }

  // Each process owns a stretch of the features, of about equal bins: it keeps their histograms
  // only (summed over the processes by a reduce-scatter) and finds their best split.
  void slice_features() {
    const int ranks = group_ == nullptr ? 1 : group_->size();
    const int rank = group_ == nullptr ? 0 : group_->rank();
    const auto total = static_cast<int64_t>(bins_.total());
    std::vector<int64_t> first(static_cast<size_t>(ranks + 1), rows_.features);
    first[0] = 0;
    for (int r = 1; r < ranks; ++r) {
      // The first feature whose bins start at or past r / ranks of all of them.
      int64_t f = first[static_cast<size_t>(r - 1)];
      while (f < rows_.features &&
             int64_t{bins_.offset[static_cast<size_t>(f)]} * ranks < total * r) {
        ++f;
      }
      first[static_cast<size_t>(r)] = f;
    }
    for (int r = 0; r < ranks; ++r) {
      const int64_t bins = bins_.offset[static_cast<size_t>(first[static_cast<size_t>(r + 1)])] -
                           bins_.offset[static_cast<size_t>(first[static_cast<size_t>(r)])];
      slice_bins_.push_back(bins);
      padded_ = std::max(padded_, bins);
    }
    first_feature_ = first[static_cast<size_t>(rank)];
    end_feature_ = first[static_cast<size_t>(rank + 1)];
    slice_starts_ = std::move(first);
  }

  // Every process's best split of each node (of its features) made the best of all: the largest
  // gain, on a tie the first feature, as one process scanning every feature in order finds.
  void agree_on_splits(std::vector<OpenNode>& nodes) const {
    if (group_ == nullptr || group_->size() == 1 || nodes.empty()) return;
    constexpr size_t kFields = 6;
    std::vector<double> mine;
    for (const OpenNode& n : nodes) {
      const Split& s = n.split;
      mine.insert(mine.end(),
                  {s.feature >= 0 ? s.gain : -1.0, static_cast<double>(s.feature),
                   static_cast<double>(s.bin), s.default_left ? 1.0 : 0.0, s.left.g, s.left.h});
    }
    std::vector<double> all(mine.size() * static_cast<size_t>(group_->size()));
    group_->allgather(std::span<const double>(mine), std::span<double>(all))->wait();
    for (size_t i = 0; i < nodes.size(); ++i) {
      Split best;
      for (int r = 0; r < group_->size(); ++r) {
        const double* c = all.data() + (static_cast<size_t>(r) * nodes.size() + i) * kFields;
        if (c[1] >= 0 && (best.feature < 0 || c[0] > best.gain)) {
          best = {c[0],
                  static_cast<int32_t>(c[1]),
                  static_cast<int32_t>(c[2]),
                  c[3] != 0,
                  {c[4], c[5]}};
        }
      }
      nodes[i].split = best;
    }
  }

  // Moves each parent's rows that go left before those that go right, each in their order;
  // returns where each parent's right ones begin. The rows go in stretches of kPartitionRows, all
  // at once on the threads: each stretch puts its left rows at its front in spill_ and its right
  // ones at its back, then copies them to their places.
  std::vector<int64_t> partition(const std::vector<OpenNode>& parents) {
    struct Stretch {
      size_t parent;
      int64_t begin, end, left;
    };
    std::vector<Stretch> stretches;
    for (size_t p = 0; p < parents.size(); ++p) {
      for (int64_t b = parents[p].begin; b < parents[p].end; b += kPartitionRows) {
        stretches.push_back({p, b, std::min(parents[p].end, b + kPartitionRows), 0});
      }
    }
    const auto each = [&](const std::function<void(Stretch&)>& fn) {
      parallel_for(static_cast<int64_t>(stretches.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) fn(stretches[static_cast<size_t>(i)]);
      });
    };
    each([&](Stretch& t) {
      const Split& s = parents[t.parent].split;
      int64_t left = t.begin;
      int64_t right = t.end;
      for (int64_t i = t.begin; i < t.end; ++i) {
        const int32_t r = order_[static_cast<size_t>(i)];
        const uint8_t bin = rows_.row(r)[s.feature];
        const bool goes_left = bin == 0 ? s.default_left : bin <= s.bin;
        spill_[static_cast<size_t>(goes_left ? left++ : --right)] = r;
      }
      t.left = left - t.begin;
    });
    // Where each stretch's left and right rows go.
    std::vector<int64_t> middles(parents.size());
    for (size_t p = 0; p < parents.size(); ++p) middles[p] = parents[p].begin;
    for (const Stretch& t : stretches) middles[t.parent] += t.left;
    std::vector<std::pair<int64_t, int64_t>> to(stretches.size());
    std::vector<std::pair<int64_t, int64_t>> next(parents.size());
    for (size_t p = 0; p < parents.size(); ++p) next[p] = {parents[p].begin, middles[p]};
    for (size_t i = 0; i < stretches.size(); ++i) {
      const Stretch& t = stretches[i];
      to[i] = next[t.parent];
      next[t.parent].first += t.left;
      next[t.parent].second += t.end - t.begin - t.left;
    }
    each([&](Stretch& t) {
      const auto i = static_cast<size_t>(&t - stretches.data());
      std::copy(spill_.begin() + t.begin, spill_.begin() + t.begin + t.left,
                order_.begin() + to[i].first);
      // The right ones were put from the back: reversed, back in their order.
      std::reverse_copy(spill_.begin() + t.begin + t.left, spill_.begin() + t.end,
                        order_.begin() + to[i].second);
    });
    return middles;
  }

  // The histograms of nodes[which] (of this process's features), from every process's rows: each
  // process adds its rows to a histogram of all features, then one reduce-scatter sums each
  // stretch of features onto the process that owns it.
  void build_histograms(std::vector<OpenNode>& nodes, const std::vector<size_t>& which) {
    const size_t size = 2 * static_cast<size_t>(bins_.total());
    const int ranks = group_ == nullptr ? 1 : group_->size();
    if (which.empty()) return;
    std::vector<std::vector<double>> full(which.size());
    for (std::vector<double>& h : full) h = pool_.take();
    // Several nodes: a thread each; one: its rows or features split over the threads.
    const auto build = [&](size_t i, bool alone) {
      full[i].assign(size, 0.0);
      add_rows(nodes[which[i]], full[i].data(), alone);
    };
    if (which.size() == 1) {
      build(0, true);
    } else {
      parallel_for(static_cast<int64_t>(which.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) build(static_cast<size_t>(i), false);
      });
    }
    if (ranks == 1) {
      for (size_t i = 0; i < which.size(); ++i) nodes[which[i]].histogram = std::move(full[i]);
      return;
    }
    const size_t block = 2 * static_cast<size_t>(padded_);
    std::vector<double> send(static_cast<size_t>(ranks) * which.size() * block, 0.0);
    for (size_t i = 0; i < which.size(); ++i) {
      for (int r = 0; r < ranks; ++r) {
        const auto from =
            2 * static_cast<size_t>(
                    bins_.offset[static_cast<size_t>(slice_starts_[static_cast<size_t>(r)])]);
        std::copy_n(full[i].begin() + static_cast<std::ptrdiff_t>(from),
                    2 * slice_bins_[static_cast<size_t>(r)],
                    send.begin() + static_cast<std::ptrdiff_t>(
                                       (static_cast<size_t>(r) * which.size() + i) * block));
      }
      pool_.give(std::move(full[i]));
    }
    std::vector<double> mine(which.size() * block);
    group_
        ->reduce_scatter(send.data(), mine.data(), mine.size(), comm::DataType::kFloat64,
                         comm::ReduceOp::kSum)
        ->wait();
    const auto own = 2 * static_cast<size_t>(slice_bins_[static_cast<size_t>(group_->rank())]);
    for (size_t i = 0; i < which.size(); ++i) {
      const auto at = mine.begin() + static_cast<std::ptrdiff_t>(i * block);
      nodes[which[i]].histogram = pool_.take();
      nodes[which[i]].histogram.assign(at, at + static_cast<std::ptrdiff_t>(own));
    }
  }

  // Adds the node's rows to a histogram of all features. A node `alone` on the threads with many
  // rows for the bins: each thread adds its share of the rows to a histogram of its own, then they
  // are added; else each thread takes a share of the features. Sums of integers: the same either
  // way.
  void add_rows(const OpenNode& n, double* histogram, bool alone) {
    const int64_t rows = n.end - n.begin;
    const int64_t d = rows_.features;
    const auto size = 2 * static_cast<size_t>(bins_.total());
    const int threads = num_threads();
    if (!alone || threads == 1 || rows * d < kRowsPerBinToSplitRows * static_cast<int64_t>(size)) {
      parallel_for(d, grain_for(rows), [&](int64_t first, int64_t last) {
        add_stretch(n.begin, n.end, first, last, histogram);
      });
      return;
    }
    std::vector<std::vector<double>>& own = pool_.per_thread;
    own.resize(static_cast<size_t>(threads - 1));
    parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        double* into = histogram;
        if (t > 0) {
          own[static_cast<size_t>(t - 1)].assign(size, 0.0);
          into = own[static_cast<size_t>(t - 1)].data();
        }
        add_stretch(n.begin + rows * t / threads, n.begin + rows * (t + 1) / threads, 0, d, into);
      }
    });
    for (int t = 1; t < threads; ++t) {
      const std::vector<double>& h = own[static_cast<size_t>(t - 1)];
      for (size_t i = 0; i < size; ++i) histogram[i] += h[i];
    }
  }

  // Adds the rows order_[begin, end) to the histogram's bins of features [first, last).
  void add_stretch(int64_t begin, int64_t end, int64_t first, int64_t last,
                   double* histogram) const {
    // A bin's gradient and hessian added as one vector.
    using Pair = double __attribute__((vector_size(16), may_alias));
    const int32_t* offset = bins_.offset.data();
    for (int64_t i = begin; i < end; ++i) {
      const int32_t r = order_[static_cast<size_t>(i)];
      const uint8_t* row = rows_.row(r);
      const GradientPair p = gradients_[static_cast<size_t>(r)];
      const Pair pair = {p.g, p.h};
      for (int64_t f = first; f < last; ++f) {
        *reinterpret_cast<Pair*>(histogram + 2 * (offset[f] + row[f])) += pair;
      }
    }
  }

  [[nodiscard]] double score(GradientPair s) const {
    const double g = s.g / g_scale_;
    const double t = std::copysign(std::max(std::abs(g) - o_.reg_alpha, 0.0), g);
    return t * t / (s.h / h_scale_ + o_.reg_lambda);
  }

  // Which features node `id` may split on (colsample_bynode of them, at least one, by the smallest
  // keyed draws); empty: all.
  [[nodiscard]] std::vector<uint8_t> features_of(int32_t id) const {
    if (o_.colsample_bynode >= 1.0) return {};
    const int64_t d = rows_.features;
    const auto keep =
        std::max<int64_t>(1, static_cast<int64_t>(o_.colsample_bynode * static_cast<double>(d)));
    std::vector<std::pair<double, int64_t>> keys(static_cast<size_t>(d));
    const uint64_t stream = mix64(kFeatureStream ^ mix64(static_cast<uint64_t>(id)));
    for (int64_t f = 0; f < d; ++f) {
      keys[static_cast<size_t>(f)] = {keyed_uniform(tree_key_, stream, static_cast<uint64_t>(f)),
                                      f};
    }
    std::nth_element(keys.begin(), keys.begin() + keep - 1, keys.end());
    std::vector<uint8_t> usable(static_cast<size_t>(d), 0);
    for (int64_t i = 0; i < keep; ++i)
      usable[static_cast<size_t>(keys[static_cast<size_t>(i)].second)] = 1;
    return usable;
  }

  [[nodiscard]] Split best_split(const OpenNode& n) const {
    Split best;
    const double parent = score(n.total);
    const double least_h = o_.min_child_weight * h_scale_;
    const auto consider = [&](GradientPair left, int64_t f, int64_t b, bool default_left) {
      const GradientPair right = n.total - left;
      if (left.h < least_h || right.h < least_h) return;
      const double gain = score(left) + score(right) - parent;
      if (gain > best.gain) {
        best = {gain, static_cast<int32_t>(f), static_cast<int32_t>(b), default_left, left};
      }
    };
    const std::vector<uint8_t> usable = features_of(n.id);
    const int32_t base = bins_.offset[static_cast<size_t>(first_feature_)];
    for (int64_t f = first_feature_; f < end_feature_; ++f) {
      if (!usable.empty() && usable[static_cast<size_t>(f)] == 0) continue;
      const double* h =
          n.histogram.data() + 2 * static_cast<size_t>(bins_.offset[static_cast<size_t>(f)] - base);
      const GradientPair missing{h[0], h[1]};
      GradientPair left;
      for (int64_t b = 1; b + 1 < bins_.bins(f); ++b) {
        left = left + GradientPair{h[2 * b], h[2 * b + 1]};
        consider(left, f, b, false);
        if (missing.h > 0) consider(left + missing, f, b, true);
      }
    }
    if (best.gain <= std::max(kMinGain, o_.min_split_loss)) best.feature = -1;
    return best;
  }

  void make_leaf(OpenNode& n) {
    pool_.give(std::move(n.histogram));
    TreeNode& node = result_.tree.nodes[static_cast<size_t>(n.id)];
    const double g = n.total.g / g_scale_;
    const double t = std::copysign(std::max(std::abs(g) - o_.reg_alpha, 0.0), g);
    const double h = n.total.h / h_scale_ + o_.reg_lambda;
    node.value = h > 0 ? -t / h * o_.learning_rate : 0.0;
    leaves_.push_back({n.id, n.begin, n.end});
  }

  // Each row's leaf: those grown on from the leaves' stretches, the others from the tree.
  void find_leaves_of_rows() {
    std::vector<int32_t>& leaf_of_row = result_.leaf_of_row;
    parallel_for(static_cast<int64_t>(leaves_.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t l = begin; l < end; ++l) {
        const Leaf& leaf = leaves_[static_cast<size_t>(l)];
        for (int64_t i = leaf.begin; i < leaf.end; ++i) {
          leaf_of_row[static_cast<size_t>(order_[static_cast<size_t>(i)])] = leaf.id;
        }
      }
    });
    if (order_.size() == leaf_of_row.size()) return;
    parallel_for(rows_.rows(), kPartitionRows, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (leaf_of_row[static_cast<size_t>(r)] < 0) {
          leaf_of_row[static_cast<size_t>(r)] = binned_leaf(result_.tree, rows_.row(r));
        }
      }
    });
  }

  const BinnedRows& rows_;
  const FeatureBins& bins_;
  std::span<const GradientPair> gradients_;
  double g_scale_;
  double h_scale_;
  GrowOptions o_;
  comm::ProcessGroup* group_;
  HistogramPool& pool_;
  uint64_t tree_key_;                  // the seed of this tree's draws
  std::vector<int32_t> order_;         // the rows grown on, each node's a stretch
  std::vector<int32_t> spill_;         // the right rows of a partition
  std::vector<int64_t> slice_starts_;  // each process's first feature, then the features
  std::vector<int64_t> slice_bins_;    // each process's histogram bins
  int64_t padded_ = 0;                 // the most bins of a process
  int64_t first_feature_ = 0;          // this process's features
  int64_t end_feature_ = 0;
  struct Leaf {
    int32_t id;
    int64_t begin, end;  // its rows in order_
  };
  std::vector<Leaf> leaves_;
  GrownTree result_;
};

}  // namespace

GrownTree grow_tree(const BinnedRows& rows, const FeatureBins& bins,
                    std::span<const GradientPair> gradients, double g_scale, double h_scale,
                    const GrowOptions& options, comm::ProcessGroup* group, HistogramPool& pool) {
  return Grower(rows, bins, gradients, g_scale, h_scale, options, group, pool).grow();
}

int32_t binned_leaf(const Tree& tree, const uint8_t* row) {
  int32_t at = 0;
  for (;;) {
    const TreeNode& n = tree.nodes[static_cast<size_t>(at)];
    if (n.feature < 0) return at;
    const uint8_t bin = row[n.feature];
    at = (bin == 0 ? n.default_left : bin <= n.bin) ? n.left : n.right;
  }
}

}  // namespace tessera::estimators
