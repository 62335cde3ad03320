#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/row_source.h"
#include "tessera/tensor/tensor.h"
#include "tessera/train/config.h"

namespace tessera::train {

// A model's scores on some rows, by name ("accuracy", "log_loss", "rmse", "r2", "inertia"), in the
// order they are printed.
using Scores = std::vector<std::pair<std::string, double>>;
// "test accuracy 84.13%, test log loss 0.4496" for prefix "test" (no prefix: "accuracy ...").
[[nodiscard]] std::string describe_scores(const std::string& prefix, const Scores& scores);

// A fitted estimator of any family (docs/ml.md), as train, eval and predict use it.
class EstimatorModel {
 public:
  virtual ~EstimatorModel() = default;
  EstimatorModel() = default;
  EstimatorModel(const EstimatorModel&) = delete;
  EstimatorModel& operator=(const EstimatorModel&) = delete;

  [[nodiscard]] virtual int64_t features() const = 0;
  // The classes its predictions name (0: it predicts values); probability_columns() of them come
  // with a probability each (0 or classes()).
  [[nodiscard]] virtual int64_t classes() const = 0;
  [[nodiscard]] virtual int64_t probability_columns() const = 0;
  // Its scores on the rows, summed over `group` (every process gets them).
  [[nodiscard]] virtual Scores score(estimators::RowSource& rows,
                                     comm::ProcessGroup* group) const = 0;
  // A model that transforms rows (PCA) predicts no class or value: its predictions are the
  // probability_columns() coordinates of each row.
  [[nodiscard]] virtual bool transforms() const { return false; }
  // One prediction per row of x (a class as a number, or a value), and probability_columns()
  // probabilities (or coordinates) per row.
  virtual void predict(const Tensor& x, std::vector<double>& predicted,
                       std::vector<float>& probabilities) const = 0;
  virtual void write(BinaryWriter& out) const = 0;
};

// What fitting reported.
struct EstimatorFit {
  std::unique_ptr<EstimatorModel> model;
  int64_t rows = 0;        // over every process
  int64_t iterations = 0;  // 0: one pass, nothing minimised
  double objective = 0.0;  // what the fit minimised, at its end
  bool converged = false;
  std::string stop;  // why it stopped
};

// Fits the estimator [model] names on every process's rows at once (each process its own share,
// combined by allreduce), calling on_iteration(iteration, objective) as it goes.
[[nodiscard]] EstimatorFit fit_estimator(const ModelConfig& model, uint64_t seed,
                                         estimators::RowSource& rows, comm::ProcessGroup* group,
                                         std::function<void(int64_t, double)> on_iteration);

// Reads the model bytes that write() of a model of this [model] wrote; throws FormatError naming
// the reader's source.
[[nodiscard]] std::unique_ptr<EstimatorModel> read_estimator_model(const ModelConfig& model,
                                                                   BinaryReader& in);

}  // namespace tessera::train
