#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/data/dataset.h"

// Character-level language modelling over a text file: its bytes are the tokens. Sample i is the
// window of seq_len + 1 tokens starting at byte i * seq_len of the range read (windows overlap by
// one token: the last one's target is the next window's first input). Features are the token ids
// as float32 (exact below 2^24); the label is 0, since the targets are the window itself.
namespace tessera::data {

class TextDataset : public Dataset {
 public:
  // Reads bytes [from * size, to * size) of `path` (from, to: fractions of the file, so that one
  // file gives both a training and a test split). The vocabulary is `vocabulary` (byte values,
  // token i being byte vocabulary[i]) or, when empty, every distinct byte of the whole file in
  // increasing order; it is class_labels(). Throws FormatError naming the file when it cannot be
  // read and the file and offset of a byte outside a given vocabulary, and ValueError when the
  // range holds fewer than seq_len + 1 bytes.
  TextDataset(const std::string& path, int64_t seq_len, double from = 0.0, double to = 1.0,
              std::vector<int64_t> vocabulary = {});

  [[nodiscard]] int64_t size() const override { return windows_; }
  [[nodiscard]] const Shape& sample_shape() const override { return shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override;

 private:
  std::vector<uint8_t> tokens_;  // of the range read
  int64_t seq_len_;
  int64_t windows_;
  Shape shape_;
};

}  // namespace tessera::data
