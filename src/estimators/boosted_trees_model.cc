// A fitted tree ensemble: its predictions, scores and bytes (version, objective, features, classes,
// base margins, then each tree's nodes).
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "collective.h"
#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tessera/estimators/boosted_trees.h"

namespace tessera::estimators {
namespace {

constexpr uint32_t kBoostedTreesVersion = 1;
constexpr int64_t kMaxTreeFeatures = int64_t{1} << 32;
constexpr int64_t kMaxTreeClasses = int64_t{1} << 20;
constexpr uint64_t kNodeBytes = 6 * 4 + 8;

// Each row's class probabilities from its margins (softmax; for one margin, [1 - p, p]).
void probabilities_of(const double* m, int64_t outputs, int64_t classes, double* p) {
  if (outputs == 1) {
    p[1] = 1.0 / (1.0 + std::exp(-m[0]));
    p[0] = 1.0 - p[1];
    return;
  }
  const double top = *std::max_element(m, m + outputs);
  double total = 0.0;
  for (int64_t c = 0; c < classes; ++c) total += std::exp(m[c] - top);
  for (int64_t c = 0; c < classes; ++c) p[c] = std::exp(m[c] - top) / total;
}

// The predicted class of a row's margins: the first largest, or margin > 0 for one.
int64_t class_of(const double* m, int64_t outputs) {
  if (outputs == 1) return m[0] > 0 ? 1 : 0;
  return std::max_element(m, m + outputs) - m;
}

void check_tree(const Tree& tree, int64_t features, const std::string& source) {
  const auto count = static_cast<int32_t>(tree.nodes.size());
  for (int32_t i = 0; i < count; ++i) {
    const TreeNode& n = tree.nodes[static_cast<size_t>(i)];
    if (n.feature < 0) continue;
    // Children after their parent: every walk ends at a leaf.
    if (n.feature >= features || n.left <= i || n.right <= i || n.left >= count ||
        n.right >= count || n.bin < 1 || n.bin > 255) {
      throw FormatError(detail::concat(source, ": tree node ", i, " (feature ", n.feature,
                                       ", children ", n.left, " and ", n.right, ") of ", count,
                                       " nodes over ", features, " features"));
    }
  }
}

}  // namespace

const TreeNode& Tree::leaf(const float* row) const {
  const TreeNode* n = nodes.data();
  while (n->feature >= 0) {
    const float v = row[n->feature];
    // Arithmetic, not a branch: which way a row goes is not predictable. (NaN < t is false.)
    const int32_t left =
        static_cast<int32_t>(v < n->threshold) |
        (static_cast<int32_t>(std::isnan(v)) & static_cast<int32_t>(n->default_left));
    n = nodes.data() + n->right + left * (n->left - n->right);
  }
  return *n;
}

std::vector<double> BoostedTreesModel::margins(const Tensor& x) const {
  const int64_t n = x.size(0);
  const int64_t k = outputs();
  std::vector<double> m(static_cast<size_t>(n * k));
  const float* rows = x.data<float>();
  // A block of rows walks each tree in turn: the tree stays in cache, and the rows' walks, each
  // a chain of loads, overlap.
  constexpr int64_t kBlockRows = 64;
  parallel_for(
      n, grain_for(static_cast<int64_t>(trees.size()) * 8), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          std::copy(base_margin.begin(), base_margin.end(), m.data() + r * k);
        }
        for (int64_t block = begin; block < end; block += kBlockRows) {
          const int64_t block_end = std::min(end, block + kBlockRows);
          for (size_t t = 0; t < trees.size(); ++t) {
            const auto c = static_cast<int64_t>(t % static_cast<size_t>(k));
            for (int64_t r = block; r < block_end; ++r) {
              m[static_cast<size_t>(r * k + c)] += trees[t].leaf(rows + r * features).value;
            }
          }
        }
      });
  return m;
}

void BoostedTreesModel::predict(const Tensor& x, std::vector<double>& predicted,
                                std::vector<float>& probabilities) const {
  const std::vector<double> m = margins(x);
  const auto n = static_cast<size_t>(x.size(0));
  const int64_t k = outputs();
  predicted.resize(n);
  probabilities.assign(n * static_cast<size_t>(classes), 0.0F);
  std::vector<double> p(static_cast<size_t>(classes));
  for (size_t r = 0; r < n; ++r) {
    const double* row = m.data() + r * static_cast<size_t>(k);
    if (classes == 0) {
      predicted[r] = row[0];
      continue;
    }
    predicted[r] = static_cast<double>(class_of(row, k));
    probabilities_of(row, k, classes, p.data());
    for (int64_t c = 0; c < classes; ++c) {
      probabilities[r * static_cast<size_t>(classes) + static_cast<size_t>(c)] =
          static_cast<float>(p[static_cast<size_t>(c)]);
    }
  }
}

PredictionScore score_boosted_trees(const BoostedTreesModel& model, RowSource& rows,
                                    comm::ProcessGroup* group) {
  const int64_t k = model.outputs();
  const double eps = std::numeric_limits<double>::epsilon();
  // [rows, right, log loss, squared error, sum y, sum y^2]
  std::vector<double> sums = sum_blocks(rows, 6, [&](const RowBlock& b, std::vector<double>& sums) {
    const std::vector<double> m = model.margins(b.x);
    std::vector<double> p(static_cast<size_t>(std::max<int64_t>(model.classes, 1)));
    for (int64_t r = 0; r < b.rows(); ++r) {
      const double y = b.y[static_cast<size_t>(r)];
      const double* row = m.data() + r * k;
      sums[0] += 1;
      if (model.classes == 0) {
        sums[3] += (row[0] - y) * (row[0] - y);
      } else {
        sums[1] += static_cast<double>(class_of(row, k)) == y ? 1 : 0;
        probabilities_of(row, k, model.classes, p.data());
        const bool known = y >= 0 && y < static_cast<double>(model.classes);
        const double truth = known ? p[static_cast<size_t>(y)] : 0.0;
        sums[2] -= std::log(std::clamp(truth, eps, 1.0 - eps));
      }
      sums[4] += y;
      sums[5] += y * y;
    }
  });
  sum_over(group, sums);
  return prediction_score(sums);
}

void BoostedTreesModel::write(BinaryWriter& out) const {
  out.write_u32(kBoostedTreesVersion);
  out.write_string(objective);
  out.write_i64(features);
  out.write_i64(classes);
  for (double m : base_margin) out.write_f64(m);
  out.write_u64(trees.size());
  for (const Tree& t : trees) {
    out.write_u64(t.nodes.size());
    for (const TreeNode& n : t.nodes) {
      out.write_u32(static_cast<uint32_t>(n.feature));
      out.write_u32(std::bit_cast<uint32_t>(n.threshold));
      out.write_u32(static_cast<uint32_t>(n.bin));
      out.write_u32(n.default_left ? 1 : 0);
      out.write_u32(static_cast<uint32_t>(n.left));
      out.write_u32(static_cast<uint32_t>(n.right));
      out.write_f64(n.value);
    }
  }
}

BoostedTreesModel BoostedTreesModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kBoostedTreesVersion) {
    throw FormatError(detail::concat(in.source(), ": boosted trees version ", version,
                                     ", expected ", kBoostedTreesVersion));
  }
  BoostedTreesModel m;
  m.objective = in.read_string(32);
  m.features = in.read_i64();
  m.classes = in.read_i64();
  const bool classes_fit = m.objective == "regression" ? m.classes == 0
                           : m.objective == "binary"   ? m.classes == 2
                           : m.objective == "multiclass"
                               ? m.classes >= 2 && m.classes <= kMaxTreeClasses
                               : false;
  if (!classes_fit || m.features < 1 || m.features > kMaxTreeFeatures) {
    throw FormatError(detail::concat(in.source(), ": no tree model has objective '", m.objective,
                                     "', ", m.classes, " classes and ", m.features, " features"));
  }
  const int64_t k = m.outputs();
  for (int64_t c = 0; c < k; ++c) m.base_margin.push_back(in.read_f64());
  const uint64_t trees = in.read_u64();
  const auto left = in.remaining();
  if (trees % static_cast<uint64_t>(k) != 0 || (left && trees > *left / (8 + kNodeBytes))) {
    throw FormatError(detail::concat(in.source(), ": ", trees, " trees for ", k, " outputs"));
  }
  m.trees.resize(trees);
  for (Tree& t : m.trees) {
    const uint64_t count = in.read_u64();
    const auto bytes = in.remaining();
    if (count == 0 || count > (uint64_t{1} << 31) || (bytes && count > *bytes / kNodeBytes)) {
      throw FormatError(detail::concat(in.source(), ": a tree of ", count, " nodes"));
    }
    t.nodes.resize(count);
    for (TreeNode& n : t.nodes) {
      n.feature = static_cast<int32_t>(in.read_u32());
      n.threshold = std::bit_cast<float>(in.read_u32());
      n.bin = static_cast<int32_t>(in.read_u32());
      n.default_left = in.read_u32() != 0;
      n.left = static_cast<int32_t>(in.read_u32());
      n.right = static_cast<int32_t>(in.read_u32());
      n.value = in.read_f64();
    }
    check_tree(t, m.features, in.source());
  }
  return m;
}

}  // namespace tessera::estimators
