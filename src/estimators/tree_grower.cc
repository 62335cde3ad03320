#include "tree_grower.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "collective.h"
#include "tessera/core/random.h"
#include "tessera/core/thread_pool.h"

namespace tessera::estimators {
namespace {

// A split must gain more than this (XGBoost's kRtEps): less is rounding.
constexpr double kMinGain = 1e-6;
// A node's rows split over the threads (each its own histogram) when they hold this many values
// per histogram entry; fewer, its features are.
constexpr int64_t kRowsPerBinToSplitRows = 4;
// How far ahead of the row it is at a pass over a node's rows (in any order) fetches a row.
constexpr int64_t kPrefetchRows = 16;
// A parent of this many rows or more is partitioned by all the threads; fewer, by one.
constexpr int64_t kPartitionRows = 16384;
// Streams of the keyed draws: which rows a tree grows on, which features a node may split.
constexpr uint64_t kRowStream = 3;
constexpr uint64_t kFeatureStream = 4;

constexpr double kInfinity = std::numeric_limits<double>::infinity();

GradientPair operator+(GradientPair a, GradientPair b) { return {a.g + b.g, a.h + b.h}; }
GradientPair operator-(GradientPair a, GradientPair b) { return {a.g - b.g, a.h - b.h}; }

// A side's share of a split's gain, from its sums of integer gradients and hessians (the true ones
// times g_scale and h_scale): XGBoost's, with L1 (alpha) and L2 (lambda) penalties.
inline double split_score(GradientPair s, double g_scale, double h_scale, double alpha,
                          double lambda) {
  const double g = s.g / g_scale;
  const double t = std::copysign(std::max(std::abs(g) - alpha, 0.0), g);
  return t * t / (s.h / h_scale + lambda);
}

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
      // Children at the deepest level are leaves: no split to find, no histogram to build.
      if (o_.max_depth == 0 || left.depth < o_.max_depth) {
        built.push_back(left.total.h <= right.total.h ? 2 * p : 2 * p + 1);
      } else {
        pool_.give(std::move(parent.histogram));
      }
    }
    build_histograms(children, built);
    const auto size = 2 * static_cast<int64_t>(bins_.total());
    parallel_for(static_cast<int64_t>(built.size()), grain_for(size),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t b = begin; b < end; ++b) {
                     const size_t small = built[static_cast<size_t>(b)];
                     OpenNode& other = children[small ^ 1U];
                     other.histogram = std::move(parents[small / 2].histogram);
                     const std::vector<double>& known = children[small].histogram;
                     for (size_t i = 0; i < other.histogram.size(); ++i)
                       other.histogram[i] -= known[i];
                   }
                 });
    parallel_for(static_cast<int64_t>(built.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const size_t small = built[static_cast<size_t>(b)];
        children[small].split = best_split(children[small]);
        children[small ^ 1U].split = best_split(children[small ^ 1U]);
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
    plain_.shift = {0};
    for (int64_t f = 0; f <= rows_.features; ++f) {
      plain_.pos.push_back(2 * int64_t{bins_.offset[static_cast<size_t>(f)]});
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
  // returns where each parent's right ones begin. The rows go in stretches, all at once on the
  // threads: a parent of kPartitionRows or more is cut in a stretch a thread, the first to the
  // first thread (its rows are in row order: each thread reads about its own stretch of the rows,
  // as the histograms' do), a smaller one goes whole to the thread with the fewest rows so far.
  // Each stretch puts its left rows at its front in spill_ and its right ones at its back, then
  // copies them to their places.
  std::vector<int64_t> partition(const std::vector<OpenNode>& parents) {
    struct Stretch {
      size_t parent;
      int64_t begin, end, left;
    };
    int64_t total = 0;
    for (const OpenNode& p : parents) total += p.end - p.begin;
    const int threads = total < kPartitionRows ? 1 : num_threads();
    std::vector<Stretch> stretches;
    std::vector<std::vector<size_t>> of_thread(static_cast<size_t>(threads));
    std::vector<int64_t> load(static_cast<size_t>(threads), 0);
    for (size_t p = 0; p < parents.size(); ++p) {
      const int64_t begin = parents[p].begin;
      const int64_t rows = parents[p].end - begin;
      const int cuts = rows < kPartitionRows ? 1 : threads;
      const auto least =
          static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      for (int c = 0; c < cuts; ++c) {
        const size_t t = cuts == 1 ? least : static_cast<size_t>(c);
        stretches.push_back({p, begin + rows * c / cuts, begin + rows * (c + 1) / cuts, 0});
        of_thread[t].push_back(stretches.size() - 1);
        load[t] += rows / cuts;
      }
    }
    const auto each = [&](const std::function<void(Stretch&)>& fn) {
      parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          for (size_t i : of_thread[static_cast<size_t>(t)]) fn(stretches[i]);
        }
      });
    };
    each([&](Stretch& t) {
      const Split& s = parents[t.parent].split;
      int64_t left = t.begin;
      int64_t right = t.end;
      for (int64_t i = t.begin; i < t.end; ++i) {
        if (i + kPrefetchRows < t.end) {
          __builtin_prefetch(rows_.row(order_[static_cast<size_t>(i + kPrefetchRows)]) + s.feature);
        }
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

  // Where a level's histograms are built: bin b of feature f of node i at into[i] + pos[f] + 2 b,
  // and entry x of a histogram laid out by bins_.offset, of process r's features, at into[i] +
  // shift[r] + x. One process: each node's histogram as bins_.offset lays it out. Several: one
  // buffer of a block per process and node, process-major, that the reduce-scatter sends as it is.
  struct Layout {
    std::vector<int64_t> pos;
    std::vector<int64_t> shift;
  };

  // The histograms of nodes[which] (of this process's features), from every process's rows: each
  // process adds its rows to histograms of all features, then one reduce-scatter sums each
  // stretch of features onto the process that owns it.
  void build_histograms(std::vector<OpenNode>& nodes, const std::vector<size_t>& which) {
    if (which.empty()) return;
    const size_t size = 2 * static_cast<size_t>(bins_.total());
    const int ranks = group_ == nullptr ? 1 : group_->size();
    const size_t m = which.size();
    std::vector<double*> into(m);
    if (ranks == 1) {
      for (size_t i = 0; i < m; ++i) {
        OpenNode& n = nodes[which[i]];
        n.histogram = pool_.take();
        n.histogram.resize(size);
        into[i] = n.histogram.data();
      }
      add_rows(nodes, which, into, plain_);
      return;
    }
    const auto block = 2 * static_cast<size_t>(padded_);
    Layout layout;
    for (int r = 0; r < ranks; ++r) {
      layout.shift.push_back(
          static_cast<int64_t>(static_cast<size_t>(r) * m * block) -
          plain_.pos[static_cast<size_t>(slice_starts_[static_cast<size_t>(r)])]);
    }
    layout.pos.resize(static_cast<size_t>(rows_.features));
    for (int r = 0; r < ranks; ++r) {
      for (int64_t f = slice_starts_[static_cast<size_t>(r)];
           f < slice_starts_[static_cast<size_t>(r + 1)]; ++f) {
        layout.pos[static_cast<size_t>(f)] =
            plain_.pos[static_cast<size_t>(f)] + layout.shift[static_cast<size_t>(r)];
      }
    }
    // Blocks' padding past a process's bins is summed and never read: left as it is.
    double* send = pool_.send(static_cast<size_t>(ranks) * m * block, *group_);
    for (size_t i = 0; i < m; ++i) into[i] = send + i * block;
    add_rows(nodes, which, into, layout);
    pool_.received.resize(m * block);
    group_
        ->reduce_scatter(send, pool_.received.data(), m * block, comm::DataType::kFloat64,
                         comm::ReduceOp::kSum)
        ->wait();
    const auto own = 2 * static_cast<size_t>(slice_bins_[static_cast<size_t>(group_->rank())]);
    for (size_t i = 0; i < m; ++i) {
      const auto at = pool_.received.begin() + static_cast<std::ptrdiff_t>(i * block);
      nodes[which[i]].histogram = pool_.take();
      nodes[which[i]].histogram.assign(at, at + static_cast<std::ptrdiff_t>(own));
    }
  }

  // Adds each node's rows to its histogram of all features, at into[i] for nodes[which[i]], laid
  // out by `layout`. A node with enough rows for its bins is shared by the threads: each adds its
  // share of the node's rows, which are in row order, so each thread reads about its own stretch
  // of the rows as a process would, into a histogram of its own, added after. Smaller nodes go
  // whole to the thread with the fewest rows so far, the largest first. One small node alone
  // shares its features. Sums of integers: the same whichever thread adds which rows.
  void add_rows(const std::vector<OpenNode>& nodes, const std::vector<size_t>& which,
                const std::vector<double*>& into, const Layout& layout) {
    const int64_t d = rows_.features;
    const auto size = 2 * static_cast<size_t>(bins_.total());
    const auto rows_of = [&](size_t i) { return nodes[which[i]].end - nodes[which[i]].begin; };
    int64_t total = 0;
    for (size_t i = 0; i < which.size(); ++i) total += rows_of(i);
    const int threads = total * d < kMinParallelElements ? 1 : num_threads();
    if (which.size() == 1 && (threads == 1 || !worth_sharing(total))) {
      zero(into[0], layout);
      const OpenNode& n = nodes[which[0]];
      parallel_for(d, grain_for(total), [&](int64_t first, int64_t last) {
        add_stretch(n.begin, n.end, first, last, into[0], layout.pos.data());
      });
      return;
    }
    std::vector<std::pair<size_t, std::vector<double>>> extra;  // (node, a thread's histogram)
    const std::vector<std::vector<Task>> tasks = plan_tasks(nodes, which, into, threads, extra);
    parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        for (const Task& task : tasks[static_cast<size_t>(t)]) {
          if (task.own) {
            std::fill_n(task.into, size, 0.0);
          } else {
            zero(task.into, layout);
          }
          add_stretch(task.begin, task.end, 0, d, task.into,
                      task.own ? plain_.pos.data() : layout.pos.data());
        }
      }
    });
    add_own_histograms(extra, into, layout);
    for (auto& [i, h] : extra) pool_.give(std::move(h));
  }

  // A thread's share of a level's rows: order_[begin, end) added into `into`.
  struct Task {
    int64_t begin, end;
    double* into;
    bool own;  // a thread's own histogram, laid out by bins_.offset
  };

  // Each thread's tasks for add_rows; `extra` receives the threads' own histograms, by node.
  std::vector<std::vector<Task>> plan_tasks(
      const std::vector<OpenNode>& nodes, const std::vector<size_t>& which,
      const std::vector<double*>& into, int threads,
      std::vector<std::pair<size_t, std::vector<double>>>& extra) {
    const auto size = 2 * static_cast<size_t>(bins_.total());
    const auto rows_of = [&](size_t i) { return nodes[which[i]].end - nodes[which[i]].begin; };
    std::vector<std::vector<Task>> tasks(static_cast<size_t>(threads));
    std::vector<int64_t> load(static_cast<size_t>(threads), 0);
    extra.reserve(which.size() * static_cast<size_t>(threads));
    std::vector<size_t> by_size(which.size());
    std::iota(by_size.begin(), by_size.end(), size_t{0});
    std::stable_sort(by_size.begin(), by_size.end(),
                     [&](size_t a, size_t b) { return rows_of(a) > rows_of(b); });
    for (size_t i : by_size) {
      const OpenNode& n = nodes[which[i]];
      const int64_t rows = n.end - n.begin;
      if (threads == 1 || !worth_sharing(rows)) {
        const auto t =
            static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        tasks[t].push_back({n.begin, n.end, into[i], false});
        load[t] += rows;
        continue;
      }
      for (int t = 0; t < threads; ++t) {
        double* to = into[i];
        if (t > 0) {
          extra.emplace_back(i, pool_.take());
          extra.back().second.resize(size);
          to = extra.back().second.data();
        }
        tasks[static_cast<size_t>(t)].push_back(
            {n.begin + rows * t / threads, n.begin + rows * (t + 1) / threads, to, t > 0});
        load[static_cast<size_t>(t)] += rows / threads;
      }
    }
    return tasks;
  }

  // Adds the threads' own histograms (laid out by bins_.offset) to their nodes' (by `layout`), each
  // process's entries apart.
  void add_own_histograms(const std::vector<std::pair<size_t, std::vector<double>>>& extra,
                          const std::vector<double*>& into, const Layout& layout) const {
    const auto size = 2 * static_cast<int64_t>(bins_.total());
    parallel_for(size, grain_for(static_cast<int64_t>(extra.size())), [&](int64_t lo, int64_t hi) {
      for (size_t r = 0; r < layout.shift.size(); ++r) {
        const int64_t from = std::max(lo, plain_.pos[static_cast<size_t>(slice_starts_[r])]);
        const int64_t to = std::min(hi, plain_.pos[static_cast<size_t>(slice_starts_[r + 1])]);
        for (const auto& [i, h] : extra) {
          double* node = into[i] + layout.shift[r];
          for (int64_t x = from; x < to; ++x) node[x] += h[static_cast<size_t>(x)];
        }
      }
    });
  }

  // Zeroes a node's histogram laid out by `layout`: each process's features' entries.
  void zero(double* into, const Layout& layout) const {
    for (size_t r = 0; r < layout.shift.size(); ++r) {
      const int64_t from = plain_.pos[static_cast<size_t>(slice_starts_[r])];
      const int64_t to = plain_.pos[static_cast<size_t>(slice_starts_[r + 1])];
      std::fill(into + layout.shift[r] + from, into + layout.shift[r] + to, 0.0);
    }
  }

  // Whether a node's rows are many enough for its histogram's entries to share among threads,
  // each adding to a histogram of its own.
  [[nodiscard]] bool worth_sharing(int64_t rows) const {
    return rows * rows_.features >= kRowsPerBinToSplitRows * 2 * int64_t{bins_.total()};
  }

  // Adds the rows order_[begin, end) to a histogram's bins of features [first, last), feature f's
  // bin b at into + pos[f] + 2 b.
  void add_stretch(int64_t begin, int64_t end, int64_t first, int64_t last, double* into,
                   const int64_t* pos) const {
    // A bin's gradient and hessian added as one vector.
    using Pair = double __attribute__((vector_size(16), may_alias));
    for (int64_t i = begin; i < end; ++i) {
      if (i + kPrefetchRows < end) {
        // The rows come in any order: fetch a later one's bins and gradients while this adds.
        const int32_t later = order_[static_cast<size_t>(i + kPrefetchRows)];
        __builtin_prefetch(rows_.row(later) + first);
        __builtin_prefetch(&gradients_[static_cast<size_t>(later)]);
      }
      const int32_t r = order_[static_cast<size_t>(i)];
      const uint8_t* row = rows_.row(r);
      const GradientPair p = gradients_[static_cast<size_t>(r)];
      const Pair pair = {p.g, p.h};
      for (int64_t f = first; f < last; ++f) {
        *reinterpret_cast<Pair*>(into + pos[f] + 2 * row[f]) += pair;
      }
    }
  }

  [[nodiscard]] double score(GradientPair s) const {
    return split_score(s, g_scale_, h_scale_, o_.reg_alpha, o_.reg_lambda);
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
    const std::vector<uint8_t> usable = features_of(n.id);
    const int32_t base = bins_.offset[static_cast<size_t>(first_feature_)];
    // The sums of a feature's bins [1, b] and the gain of splitting after b, with the missing
    // values on the right (gain) or the left (gain_missing): a loop of their own so that the
    // compiler takes the bins in vectors.
    std::array<double, 256> left_g{};
    std::array<double, 256> left_h{};
    std::array<double, 256> gain{};
    std::array<double, 256> gain_missing{};
    const double g_scale = g_scale_;
    const double h_scale = h_scale_;
    const double alpha = o_.reg_alpha;
    const double lambda = o_.reg_lambda;
    const auto gains = [&](int64_t last, GradientPair add, double* out) {
      for (int64_t b = 1; b < last; ++b) {
        const GradientPair l{left_g[static_cast<size_t>(b)] + add.g,
                             left_h[static_cast<size_t>(b)] + add.h};
        const GradientPair r = n.total - l;
        const double value = split_score(l, g_scale, h_scale, alpha, lambda) +
                             split_score(r, g_scale, h_scale, alpha, lambda) - parent;
        out[b] = l.h < least_h || r.h < least_h ? -kInfinity : value;
      }
    };
    for (int64_t f = first_feature_; f < end_feature_; ++f) {
      if (!usable.empty() && usable[static_cast<size_t>(f)] == 0) continue;
      const double* h =
          n.histogram.data() + 2 * static_cast<size_t>(bins_.offset[static_cast<size_t>(f)] - base);
      const GradientPair missing{h[0], h[1]};
      const int64_t last = bins_.bins(f) - 1;
      GradientPair left;
      for (int64_t b = 1; b < last; ++b) {
        left = left + GradientPair{h[2 * b], h[2 * b + 1]};
        left_g[static_cast<size_t>(b)] = left.g;
        left_h[static_cast<size_t>(b)] = left.h;
      }
      gains(last, {}, gain.data());
      if (missing.h > 0) gains(last, missing, gain_missing.data());
      for (int64_t b = 1; b < last; ++b) {
        const auto i = static_cast<size_t>(b);
        if (gain[i] > best.gain) {
          best = {gain[i],
                  static_cast<int32_t>(f),
                  static_cast<int32_t>(b),
                  false,
                  {left_g[i], left_h[i]}};
        }
        if (missing.h > 0 && gain_missing[i] > best.gain) {
          best = {gain_missing[i], static_cast<int32_t>(f), static_cast<int32_t>(b), true,
                  GradientPair{left_g[i], left_h[i]} + missing};
        }
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
  Layout plain_;                       // by bins_.offset: one process's
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

double* HistogramPool::send(size_t count, comm::ProcessGroup& group) {
  if (count > send_count_) {
    send_.reset();  // back to the group's pool before the larger buffer is taken
    send_ = group.allocate(count * sizeof(double));
    send_count_ = count;
    // The padding is summed though never read: zeros, not whatever the memory held.
    std::fill_n(reinterpret_cast<double*>(send_.get()), count, 0.0);
  }
  return reinterpret_cast<double*>(send_.get());
}

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
