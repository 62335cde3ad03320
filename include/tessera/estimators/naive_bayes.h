#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// Naive Bayes, scikit-learn's three (same smoothing, same priors: each class's share of the rows):
//   "gaussian": each feature normal per class, its variance plus var_smoothing times the largest
//               feature variance;
//   "multinomial": features are counts (>= 0); each class's feature probabilities smoothed by
//                  alpha;
//   "bernoulli": features are present (> binarize) or not; each class's probability of each
//                smoothed by alpha.
struct NaiveBayesOptions {
  std::string distribution = "gaussian";
  double alpha = 1.0;
  double var_smoothing = 1e-9;
  double binarize = 0.0;
};

struct NaiveBayesModel {
  std::string distribution;
  int64_t features = 0;
  int64_t classes = 0;
  std::vector<double> log_prior;  // [classes]
  // gaussian: means and variances; multinomial: log probabilities and nothing; bernoulli:
  // log p and log (1 - p). Each [classes, features], row-major.
  std::vector<double> first;
  std::vector<double> second;
  double binarize = 0.0;

  // Each row's joint log likelihood of each class, [rows, classes] row-major.
  [[nodiscard]] std::vector<double> log_likelihoods(const Tensor& x) const;

  void write(BinaryWriter& out) const;
  [[nodiscard]] static NaiveBayesModel read(BinaryReader& in);
};

// The model's accuracy and mean log loss on rows (summed over `group`, every process gets them);
// the log loss clips probabilities at float64's epsilon, as scikit-learn 1.2's log_loss does.
struct NaiveBayesScore {
  int64_t rows = 0;
  double accuracy = 0.0;
  double log_loss = 0.0;
};
[[nodiscard]] NaiveBayesScore score_naive_bayes(const NaiveBayesModel& model, RowSource& rows,
                                                comm::ProcessGroup* group);

// One pass over every process's rows (per class: the rows, the features' sums and, for
// "gaussian", their sums of squares), summed by one allreduce: every process gets one process's
// model on all the rows. Throws ValueError for bad options, a process without rows or a single
// class, FormatError naming the row's origin for a label that is no class or (multinomial) a
// negative feature.
[[nodiscard]] NaiveBayesModel fit_naive_bayes(RowSource& rows, comm::ProcessGroup* group,
                                              const NaiveBayesOptions& options);

}  // namespace tessera::estimators
