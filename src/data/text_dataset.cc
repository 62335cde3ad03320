#include "tessera/data/text_dataset.h"

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "tessera/core/error.h"

namespace tessera::data {
namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw FormatError(detail::concat(path, ": cannot open it: ", std::strerror(errno)));
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw FormatError(detail::concat(path, ": read failed"));
  return bytes;
}

}  // namespace

TextDataset::TextDataset(const std::string& path, int64_t seq_len, double from, double to,
                         std::vector<int64_t> vocabulary)
    : seq_len_(seq_len), shape_{seq_len + 1} {
  if (seq_len < 1) throw ValueError(detail::concat(path, ": sequence length ", seq_len, " < 1"));
  if (!(from >= 0.0 && from < to && to <= 1.0)) {
    throw ValueError(detail::concat(path, ": range ", from, "-", to, " is not within 0-1"));
  }
  const std::vector<char> bytes = read_file(path);
  std::array<int64_t, 256> token_of{};
  token_of.fill(-1);
  if (vocabulary.empty()) {
    std::array<bool, 256> seen{};
    for (const char c : bytes) seen[static_cast<uint8_t>(c)] = true;
    for (int b = 0; b < 256; ++b) {
      if (seen[b]) vocabulary.push_back(b);
    }
  }
  for (size_t i = 0; i < vocabulary.size(); ++i) {
    if (vocabulary[i] < 0 || vocabulary[i] > 255) {
      throw ValueError(
          detail::concat(path, ": vocabulary entry ", vocabulary[i], " is not a byte"));
    }
    token_of[static_cast<size_t>(vocabulary[i])] = static_cast<int64_t>(i);
  }
  const auto size = static_cast<double>(bytes.size());
  const auto begin = static_cast<size_t>(std::floor(from * size));
  const auto end = static_cast<size_t>(std::floor(to * size));
  tokens_.reserve(end - begin);
  for (size_t at = begin; at < end; ++at) {
    const int64_t token = token_of[static_cast<uint8_t>(bytes[at])];
    if (token < 0) {
      throw FormatError(detail::concat(path, " at byte ", at, ": byte ",
                                       static_cast<int>(static_cast<uint8_t>(bytes[at])),
                                       " is not in the training text's vocabulary"));
    }
    tokens_.push_back(static_cast<uint8_t>(token));
  }
  if (static_cast<int64_t>(tokens_.size()) < seq_len + 1) {
    throw ValueError(detail::concat(path, ": ", tokens_.size(), " bytes in range ", from, "-", to,
                                    ", fewer than a window of ", seq_len + 1));
  }
  windows_ = (static_cast<int64_t>(tokens_.size()) - 1) / seq_len;
  set_class_labels(std::move(vocabulary));
  set_origin({.file = path, .lines = {}});
}

int64_t TextDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "TextDataset::read_into");
  const uint8_t* first = tokens_.data() + index * seq_len_;
  for (int64_t i = 0; i <= seq_len_; ++i) out[static_cast<size_t>(i)] = first[i];
  return 0;
}

}  // namespace tessera::data
