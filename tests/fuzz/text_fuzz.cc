// The text reader of character-level language modelling (data::TextDataset). The first byte
// chooses: bits 0-3 the sequence length - 1, bit 4 a vocabulary of the next four bytes (as a
// test set gets the training text's: other bytes must be refused by offset), bits 5-7 the part
// of the file read (from k/16 to the end). Every window is read and checked against the file.
#include <cstdint>
#include <vector>

#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/data/text_dataset.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t seq_len = (data[0] & 15) + 1;
  std::vector<int64_t> vocabulary;
  size_t skip = 1;
  if ((data[0] & 16) != 0 && size >= 5) {
    for (size_t i = 1; i < 5; ++i) {
      bool seen = false;
      for (const int64_t v : vocabulary) seen = seen || v == data[i];
      if (!seen) vocabulary.push_back(data[i]);
    }
    skip = 5;
  }
  const double from = (data[0] >> 5) / 16.0;
  const fuzz::MemoryFile file(data + skip, size - skip);
  try {
    data::TextDataset text(file.path(), seq_len, from, 1.0, vocabulary);
    std::vector<float> window(static_cast<size_t>(seq_len + 1));
    const auto& tokens = text.class_labels();
    for (int64_t i = 0; i < text.size(); ++i) {
      (void)text.read_into(i, window);
      for (const float t : window) {
        if (t < 0 || t >= static_cast<float>(tokens.size())) __builtin_trap();
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
