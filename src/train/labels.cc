#include "tessera/train/labels.h"

#include "tessera/core/error.h"

namespace tessera::train {

void check_labels(data::Dataset& dataset, int64_t classes, const std::string& key) {
  const std::vector<int64_t>& names = dataset.class_labels();
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const int64_t label = dataset.label(i);
    if (label >= 0 && label < classes) continue;
    const bool named = label >= 0 && label < static_cast<int64_t>(names.size());
    throw FormatError(detail::concat(
        key, ": ", dataset.origin(i), ": label ",
        named ? detail::concat(names[static_cast<size_t>(label)], " (class ", label, ")")
              : std::to_string(label),
        " is outside the model's ", classes, " classes 0..", classes - 1,
        ": the last layer's `out` is the number of classes"));
  }
}

std::string describe_label_map(const std::vector<int64_t>& class_labels) {
  bool identity = true;
  for (size_t c = 0; c < class_labels.size(); ++c) {
    identity = identity && class_labels[c] == static_cast<int64_t>(c);
  }
  if (identity) return "";
  std::string text;
  for (size_t c = 0; c < class_labels.size(); ++c) {
    if (c == 8 && class_labels.size() > 10) {
      text += ", ...";
      break;
    }
    text += detail::concat(c ? ", " : "", class_labels[c], " -> ", c);
  }
  return text;
}

Tensor one_hot(const Tensor& labels, int64_t classes) {
  const int64_t rows = labels.size(0);
  Tensor targets = Tensor::zeros({rows, classes}, DType::kFloat32);
  float* t = targets.data<float>();
  const Tensor y = labels.contiguous();
  const int64_t* p = y.data<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    if (p[i] < 0 || p[i] >= classes) {
      throw IndexError(detail::concat("one_hot: label ", p[i], " at row ", i,
                                      " is outside the classes 0..", classes - 1));
    }
    t[i * classes + p[i]] = 1.0f;
  }
  return targets;
}

}  // namespace tessera::train
