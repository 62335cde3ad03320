#include "tessera/train/predictions.h"

#include <cstdio>
#include <ostream>
#include <vector>

#include "estimator_data.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/core/atomic_file.h"
#include "tessera/core/error.h"
#include "tessera/data/data_loader.h"
#include "tessera/tensor/reduce.h"
#include "tessera/tensor/softmax.h"
#include "tessera/train/saved_estimator.h"
#include "tessera/train/saved_model.h"

namespace tessera::train {
namespace {

// Rows of predictions as CSV text: the class (mapped to the file's labels) or the value, and each
// class's probability when there are any.
class PredictionLines {
 public:
  PredictionLines(std::vector<int64_t> class_labels, int64_t classes, bool probabilities)
      : labels_(std::move(class_labels)), classes_(probabilities ? classes : 0) {
    text_ = "prediction";
    for (int64_t c = 0; c < classes_; ++c) text_.append(",p_").append(label(c));
    text_ += "\n";
  }
  // A transform's coordinates instead: columns pc_1 .. pc_<columns>.
  explicit PredictionLines(int64_t columns) : columns_(columns) {
    for (int64_t c = 0; c < columns; ++c)
      text_.append(c ? ",pc_" : "pc_").append(std::to_string(c + 1));
    text_ += "\n";
  }

  void add_coordinates(const float* values) {
    for (int64_t c = 0; c < columns_; ++c) {
      text_.append(c ? "," : "").append(number(values[c], "%.7g"));
    }
    text_ += "\n";
    ++rows_;
  }

  void add(double prediction, bool is_class, const float* probabilities) {
    text_ += is_class ? label(static_cast<int64_t>(prediction)) : number(prediction, "%.9g");
    for (int64_t c = 0; c < classes_; ++c)
      text_.append(",").append(number(probabilities[c], "%.6g"));
    text_ += "\n";
    ++rows_;
  }

  [[nodiscard]] const std::string& text() const { return text_; }
  [[nodiscard]] int64_t rows() const { return rows_; }

 private:
  std::string label(int64_t c) const {
    return std::to_string(labels_.empty() ? c : labels_[static_cast<size_t>(c)]);
  }
  static std::string number(double v, const char* format) {
    char buf[32];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
  }

  std::vector<int64_t> labels_;
  int64_t classes_ = 0;
  int64_t columns_ = 0;
  std::string text_;
  int64_t rows_ = 0;
};

PredictionLines estimator_predictions(const Checkpoint& checkpoint, const std::string& spec) {
  SavedEstimator saved = load_saved_estimator(checkpoint);
  saved.layout.labels_optional = true;
  const EstimatorModel& model = *saved.model;
  const EstimatorTable table = open_estimator_table(spec, saved.config, "--data", &saved.layout);
  auto rows = table_rows(table, nullptr);
  check_feature_count(*rows, spec, model.features(), checkpoint.path, "command line", "--data");
  const int64_t columns = model.probability_columns();
  PredictionLines lines =
      model.transforms() ? PredictionLines(columns)
                         : PredictionLines(saved.layout.class_labels, model.classes(), columns > 0);
  std::vector<double> predicted;
  std::vector<float> p;
  rows->for_each_block([&](const estimators::RowBlock& block) {
    model.predict(block.x, predicted, p);
    for (int64_t i = 0; i < block.rows(); ++i) {
      if (model.transforms()) {
        lines.add_coordinates(p.data() + i * columns);
        continue;
      }
      lines.add(predicted[static_cast<size_t>(i)], model.classes() > 0,
                columns > 0 ? p.data() + i * columns : nullptr);
    }
  });
  return lines;
}

PredictionLines network_predictions(const Checkpoint& checkpoint, const std::string& spec,
                                    int64_t batch_size) {
  SavedModel saved = load_saved_model(checkpoint);
  if (saved.next_token) {
    throw ValueError("predict: " + checkpoint.path +
                     " is a language model, which predicts every position of a text; "
                     "`tessera eval` scores it");
  }
  const DataLayout layout{saved.sample_shape, saved.class_labels, /*labels_optional=*/true};
  auto dataset = open_dataset(spec, saved.config, "--data", &layout);
  PredictionLines lines(saved.class_labels, saved.classes, true);
  autograd::NoGradGuard no_grad;
  data::DataLoader loader(
      *dataset, data::DistributedSampler(dataset->size(), 0, 1, {.shuffle = false, .pad = false}),
      {.batch_size = batch_size});
  while (auto batch = loader.next()) {
    const Tensor scores = (*saved.model)(autograd::Variable(batch->x)).data();
    const Tensor p = softmax(scores, 1);
    const Tensor predicted = argmax(scores, 1);
    for (int64_t i = 0; i < batch->size(); ++i) {
      lines.add(static_cast<double>(predicted.data<int64_t>()[i]), true,
                p.data<float>() + i * saved.classes);
    }
  }
  return lines;
}

}  // namespace

int64_t write_predictions(const Checkpoint& checkpoint, const std::string& spec,
                          const std::string& out_path, int64_t batch_size) {
  const PredictionLines lines = holds_estimator(checkpoint)
                                    ? estimator_predictions(checkpoint, spec)
                                    : network_predictions(checkpoint, spec, batch_size);
  write_file_atomically(out_path, lines.text(), "predictions");
  return lines.rows();
}

}  // namespace tessera::train
