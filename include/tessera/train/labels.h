#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/data/dataset.h"
#include "tessera/tensor/tensor.h"

namespace tessera::train {

// Throws FormatError naming `key` and the sample's origin (file:line) at the first label of
// `dataset` outside the model's classes 0 .. classes-1. Reads every label once.
void check_labels(data::Dataset& dataset, int64_t classes, const std::string& key);

// "-1 -> 0, 1 -> 1": how a data set's file labels map to classes, for the log; empty when the
// labels are the class indices already.
[[nodiscard]] std::string describe_label_map(const std::vector<int64_t>& class_labels);

// Rows of one-hot targets, float32 [N, classes], for losses that compare every output with a
// target (mse, bce). Throws IndexError naming the row when a label is outside 0 .. classes-1.
[[nodiscard]] Tensor one_hot(const Tensor& labels, int64_t classes);

}  // namespace tessera::train
