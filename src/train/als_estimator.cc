#include "als_estimator.h"

#include <utility>

#include "tessera/core/error.h"
#include "tessera/estimators/als.h"

namespace tessera::train {
namespace {

class AlsEstimator : public EstimatorModel {
 public:
  AlsEstimator(estimators::AlsModel model, int64_t top_k) : m_(std::move(model)), top_k_(top_k) {}

  [[nodiscard]] int64_t features() const override { return 2; }
  [[nodiscard]] int64_t classes() const override { return 0; }
  [[nodiscard]] int64_t probability_columns() const override { return 0; }
  [[nodiscard]] Scores score(estimators::RowSource& rows,
                             comm::ProcessGroup* group) const override {
    const estimators::AlsScore s = estimators::score_als(m_, rows, group, top_k_);
    if (!m_.implicit) return {{"rmse", s.rmse}};
    // Rows that hold no user's unseen items (the training rows) have no precision to report.
    if (s.users == 0) return {};
    return {{"precision_at_k", s.precision}};
  }
  void predict(const Tensor& x, std::vector<double>& predicted,
               std::vector<float>& probabilities) const override {
    const float* ids = x.data<float>();
    const auto n = static_cast<size_t>(x.size(0));
    predicted.resize(n);
    for (size_t r = 0; r < n; ++r) {
      predicted[r] =
          m_.predict(static_cast<int64_t>(ids[2 * r]), static_cast<int64_t>(ids[2 * r + 1]));
    }
    probabilities.clear();
  }
  void write(BinaryWriter& out) const override { m_.write(out); }

 private:
  estimators::AlsModel m_;
  int64_t top_k_;
};

}  // namespace

EstimatorFit fit_als_estimator(const ModelConfig& model, uint64_t seed, estimators::RowSource& rows,
                               comm::ProcessGroup* group,
                               std::function<void(int64_t, double)> on_iteration) {
  estimators::AlsOptions o;
  o.factors = model.factors;
  o.l2 = model.l2;
  o.iterations = model.max_iter;
  o.implicit = model.implicit;
  o.alpha = model.alpha;
  o.seed = seed;
  o.on_iteration = std::move(on_iteration);
  estimators::AlsFit fit = estimators::fit_als(rows, group, o);
  return {std::make_unique<AlsEstimator>(std::move(fit.model), model.top_k),
          fit.ratings,
          fit.iterations,
          fit.objective,
          true,
          "max_iter steps, each of the users then the items"};
}

std::unique_ptr<EstimatorModel> read_als_estimator(const ModelConfig& model, BinaryReader& in) {
  estimators::AlsModel m = estimators::AlsModel::read(in);
  if (m.implicit != model.implicit) {
    throw FormatError(in.source() + ": the config says implicit = " +
                      (model.implicit ? "true" : "false") + " but the model was fitted otherwise");
  }
  return std::make_unique<AlsEstimator>(std::move(m), model.top_k);
}

}  // namespace tessera::train
