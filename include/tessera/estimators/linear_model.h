#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/lbfgs.h"
#include "tessera/estimators/prediction_score.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// What a linear model minimises: the mean loss over the rows plus l2 / 2 times the squared norm of
// the weights plus l1 times their absolute values (the intercept is not penalised): lasso and
// elastic net for "squared", L1 or elastic-net logistic regression; with l1 > 0 by OWL-QN.
//   "squared": least squares (ridge with l2 > 0) on a value target;
//   "logistic": logistic regression on class labels 0 .. K-1, binary for K = 2 (one weight per
//               feature), multinomial (softmax) above;
//   "squared_hinge": a linear SVM on labels 0 and 1 (max(0, 1 - t m)^2, t = -1 or +1).
struct LinearOptions {
  std::string loss = "logistic";
  double l2 = 0.0;
  double l1 = 0.0;
  bool fit_intercept = true;
  // Fits on features scaled to mean 0 and variance 1 (over all processes' rows); the model
  // returned takes the features as they are.
  bool standardize = false;
  // "squared" of up to kMaxClosedFormFeatures features: the normal equations from one pass
  // (least_squares.cc), solved, or with l1 minimised by coordinate descent, instead of passes over
  // the rows; false: L-BFGS or OWL-QN, as for the other losses.
  bool closed_form = true;
  LbfgsOptions solver;
};

inline constexpr int64_t kMaxClosedFormFeatures = 4096;

// A fitted linear model: margins = x W + b.
struct LinearModel {
  std::string loss;
  int64_t features = 0;
  int64_t classes = 0;           // 0 for "squared"
  int64_t outputs = 1;           // columns of W: 1, or the classes of a multinomial model
  std::vector<float> weights;    // [features, outputs], row-major
  std::vector<float> intercept;  // [outputs]

  // float32 [rows, outputs] for x float32 [rows, features].
  [[nodiscard]] Tensor margins(const Tensor& x) const;
  // One prediction per row: the class (as a number) or the value.
  [[nodiscard]] std::vector<double> predict(const Tensor& x) const;
  // The same from margins(x) already computed.
  [[nodiscard]] std::vector<double> predict_from(const Tensor& margins) const;
  // Each class's probability, [rows, classes] row-major, from margins(x) of a "logistic" model;
  // empty for the others.
  [[nodiscard]] std::vector<float> probabilities_from(const Tensor& margins) const;

  // The model's bytes, and back (linear_model_io.cc). read() checks the loss, class and output
  // counts against each other and every size against the bytes left before allocating, and
  // throws FormatError naming the reader's source.
  void write(BinaryWriter& out) const;
  [[nodiscard]] static LinearModel read(BinaryReader& in);
};

// The objective fit_linear minimises, over the parameters [W (features x outputs, row-major), b
// (outputs, when fitting an intercept)] of the model on standardised features (when
// standardising). Construction reads every process's rows once (counts, classes, each feature's
// mean and deviation) and checks the labels; each evaluation is one more pass and one allreduce.
class LinearProblem {
 public:
  LinearProblem(RowSource& rows, comm::ProcessGroup* group, LinearOptions options);

  [[nodiscard]] int64_t num_parameters() const;
  [[nodiscard]] int64_t rows() const { return total_rows_; }
  [[nodiscard]] const LinearOptions& options() const { return options_; }
  [[nodiscard]] int64_t outputs() const { return outputs_; }
  // Its value at p, with its gradient in grad.
  double operator()(const std::vector<double>& p, std::vector<double>& grad);
  // The model that parameters p describe, taking the features as they are.
  [[nodiscard]] LinearModel model(const std::vector<double>& p) const;

 private:
  void read_facts();
  void add_block(const RowBlock& block, const Tensor& weights, const std::vector<float>& b,
                 std::vector<double>& sums) const;

  RowSource& rows_;
  comm::ProcessGroup* group_;
  LinearOptions options_;
  int64_t features_ = 0;
  int64_t outputs_ = 1;
  int64_t classes_ = 0;
  int64_t total_rows_ = 0;
  std::vector<double> mean_;   // empty: not standardised
  std::vector<double> scale_;  // the standard deviation, 1 where it is 0
};

struct LinearFit {
  LinearModel model;
  double objective = 0.0;  // at the model, standardised features' weights when standardize
  int64_t rows = 0;        // over all processes
  LbfgsResult solver;      // x: the parameters in the space the objective was minimised in
};

// Fits by L-BFGS on every process at once: each pass over its rows gives a process its share of
// the loss and gradient, summed across `group` (nullptr: one process) by one allreduce, so every
// process takes the same steps to the same model, which is one process's on all the rows. Throws
// ValueError for unknown options, FormatError naming the row's origin for a label the loss cannot
// use (not a whole number from 0, or not 0 or 1 for "squared_hinge"), and ValueError when the
// processes hold no rows or the labels name a single class.
[[nodiscard]] LinearFit fit_linear(RowSource& rows, comm::ProcessGroup* group,
                                   const LinearOptions& options);

// Least squares ("squared") in closed form, the objective fit_linear minimises: one pass sums the
// rows' moments (x^T x, x^T y, ...), one allreduce, and every process solves the same normal
// equations (Cholesky, LAPACK's dposv). solver.iterations is 0. nullopt when they are singular
// (collinear features and no l2), for L-BFGS to take over. Throws as fit_linear.
[[nodiscard]] std::optional<LinearFit> solve_least_squares(RowSource& rows,
                                                           comm::ProcessGroup* group,
                                                           const LinearOptions& options);

// Quality of a model on rows (summed over `group`'s processes, every process gets the totals).
[[nodiscard]] PredictionScore score_linear(const LinearModel& model, RowSource& rows,
                                           comm::ProcessGroup* group);

}  // namespace tessera::estimators
