// The LIBSVM readers. The first byte chooses the reader and its options: bit 2 reads the file as a
// stream (every other record skipped when bit 3 is set); otherwise whole (and, bit 3 set, in
// chunks of 2 records, backwards so that every read seeks), bit 0 declaring num_features (the
// second byte), bit 1 giving the class labels {-1, 1} as a test set would get them from its
// training set.
#include <cstdint>
#include <vector>

#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/data/chunked_libsvm_dataset.h"
#include "tessera/data/libsvm_reader.h"
#include "tessera/data/libsvm_stream.h"

using namespace tessera;

namespace {

void read_stream(const fuzz::MemoryFile& file, bool skip_odd) {
  data::LibsvmStream stream(file.path());
  for (int pass = 0; pass < 2; ++pass) {
    int64_t parsed = 0;
    for (;;) {
      const bool skip = skip_odd && stream.records() % 2 == 1;
      if (!(skip ? stream.skip() : stream.next())) break;
      if (skip) continue;
      ++parsed;
      if (stream.indices().size() != stream.values().size() || stream.line() < 1) __builtin_trap();
      for (size_t i = 1; i < stream.indices().size(); ++i) {
        if (stream.indices()[i] <= stream.indices()[i - 1]) __builtin_trap();
      }
    }
    if (parsed > stream.records()) __builtin_trap();
    stream.rewind();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  data::LibsvmOptions options{.memory_limit = 256 << 20};
  if (data[0] & 1) options.num_features = data[1];
  if (data[0] & 2) options.class_labels = {-1, 1};
  const fuzz::MemoryFile file(data + 2, size - 2);
  try {
    if (data[0] & 4) {
      read_stream(file, (data[0] & 8) != 0);
      return 0;
    }
    if (data[0] & 8) {
      data::ChunkedLibsvmDataset chunks(file.path(), options, /*chunk_rows=*/2);
      if (chunks.sample_numel() > (1 << 16)) return 0;  // rows of zeros: slow, not interesting
      const auto classes = static_cast<int64_t>(chunks.class_labels().size());
      std::vector<float> sample(static_cast<size_t>(chunks.sample_numel()));
      for (int64_t i = chunks.size(); i-- > 0;) {
        const int64_t label = chunks.read_into(i, sample);
        if (label < 0 || label >= classes) __builtin_trap();
      }
      return 0;
    }
    data::InMemoryDataset dataset = data::read_libsvm(file.path(), options);
    const auto classes = static_cast<int64_t>(dataset.class_labels().size());
    for (int64_t i = 0; i < dataset.size(); ++i) {
      const int64_t label = dataset.label(i);
      if (label < 0 || label >= classes) __builtin_trap();
      (void)dataset.origin(i);
    }
  } catch (const Error&) {
  }
  return 0;
}
