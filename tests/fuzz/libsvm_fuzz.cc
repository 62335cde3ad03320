// The LIBSVM reader. The first byte chooses the options: bit 0 declares num_features (the second
// byte), bit 1 gives the class labels {-1, 1} as a test set would get them from its training set.
#include <cstdint>

#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/data/libsvm_reader.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  data::LibsvmOptions options{.memory_limit = 256 << 20};
  if (data[0] & 1) options.num_features = data[1];
  if (data[0] & 2) options.class_labels = {-1, 1};
  const fuzz::MemoryFile file(data + 2, size - 2);
  try {
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
