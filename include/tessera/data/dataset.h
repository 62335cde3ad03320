#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/tensor/shape.h"
#include "tessera/tensor/tensor.h"

namespace tessera::data {

// One sample: features (float32, the dataset's sample_shape()) and its class label.
struct Example {
  Tensor features;
  int64_t label = 0;
};

// B samples stacked: x float32 [B, ...sample_shape], y int64 [B].
struct Batch {
  Tensor x;
  Tensor y;
  [[nodiscard]] int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

// Where the samples of a data set were read from, for error messages.
struct SampleOrigin {
  std::string file;            // empty: unknown
  std::vector<int64_t> lines;  // 1-based line of each sample in a text file; empty: records
  // "train.svm:17" (a line), "labels.idx: record 6" (1-based), or "sample 5" (0-based index).
  [[nodiscard]] std::string describe(int64_t index) const;
};

// A labelled data set with integer indices 0 .. size()-1. Every sample has the same shape and
// float32 features; labels are int64 class indices.
//
// Subclasses implement read_into, which writes one sample; get() and get_batch() are built on
// it, so a batch costs one virtual call per sample (and, for in-memory data, one memcpy), never
// one per element.
//
// Access pattern: an in-memory or memory-mapped dataset serves any index at the same cost. A
// streaming dataset (ChunkedCsvDataset) documents which orders are cheap.
// Threading: read_into may keep state (a streaming dataset's current chunk), so a Dataset is
// used by one thread at a time unless the subclass says otherwise; a DataLoader calls it only
// from its own background thread.
class Dataset {
 public:
  virtual ~Dataset() = default;
  Dataset() = default;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  [[nodiscard]] virtual int64_t size() const = 0;
  // Shape of one sample's features, e.g. [1, 28, 28] for Fashion-MNIST.
  [[nodiscard]] virtual const Shape& sample_shape() const = 0;
  [[nodiscard]] int64_t sample_numel() const { return shape_numel(sample_shape()); }

  // Writes sample `index`'s features (sample_numel() floats) to out and returns its label.
  // Throws IndexError when index is outside [0, size()), ShapeError when out has another size,
  // FormatError when the underlying file turns out to be malformed there.
  virtual int64_t read_into(int64_t index, std::span<float> out) = 0;

  // Whether read_into may run on several threads at once (a data set in memory or mapped, with no
  // reading state); false unless the subclass says so.
  [[nodiscard]] virtual bool concurrent_reads() const { return false; }
  // A second reader of the same samples with reading state of its own, for another thread (a
  // streamed file: its own handle and buffer); nullptr when the data set has none to give.
  [[nodiscard]] virtual std::unique_ptr<Dataset> another_reader() const { return nullptr; }
  // The label of sample `index` alone; the default reads the whole sample. Throws as read_into.
  [[nodiscard]] virtual int64_t label(int64_t index);

  // Where sample `index` was read from: "train.svm:17", "labels.idx: record 6", "sample 5".
  [[nodiscard]] std::string origin(int64_t index) const { return origin_.describe(index); }
  void set_origin(SampleOrigin origin) { origin_ = std::move(origin); }

  // When the file's labels name classes rather than number them (LIBSVM's -1/+1 or 1..C), the
  // label that class i had in the file is class_labels()[i] and label() returns i. Empty: the
  // labels in the file are the class indices.
  [[nodiscard]] const std::vector<int64_t>& class_labels() const { return class_labels_; }
  void set_class_labels(std::vector<int64_t> labels) { class_labels_ = std::move(labels); }

  // One sample as a new tensor of sample_shape().
  [[nodiscard]] Example get(int64_t index);
  // Gathers the samples at `indices` into one new batch (x float32 [B, ...], y int64 [B]).
  [[nodiscard]] Batch get_batch(std::span<const int64_t> indices);

 protected:
  // For read_into: throws IndexError naming `what` unless 0 <= index < size(), ShapeError
  // unless out holds sample_numel() floats.
  void check_read(int64_t index, std::span<float> out, const char* what) const;
  // Throws IndexError naming `what` unless 0 <= index < size().
  void check_index(int64_t index, const char* what) const;
  Dataset(Dataset&&) = default;
  Dataset& operator=(Dataset&&) = default;

 private:
  SampleOrigin origin_;
  std::vector<int64_t> class_labels_;
};

}  // namespace tessera::data
