// The IDX reader, read whole (plain or gzip) and memory-mapped.
#include <cstdint>
#include <string>
#include <vector>

#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/mmap_idx_dataset.h"

using namespace tessera;

namespace {

// An IDX file of n uint8 labels, all 0.
std::vector<uint8_t> labels_file(int64_t n) {
  std::vector<uint8_t> bytes{0,
                             0,
                             0x08,
                             1,
                             static_cast<uint8_t>(n >> 24),
                             static_cast<uint8_t>(n >> 16),
                             static_cast<uint8_t>(n >> 8),
                             static_cast<uint8_t>(n)};
  bytes.resize(bytes.size() + static_cast<size_t>(n));
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fuzz::MemoryFile file(data, size);
  int64_t samples = -1;
  try {
    const data::IdxFile idx = data::IdxFile::read(file.path());
    (void)idx.to_float32(1.0f / 255.0f);
    if (idx.type() != data::IdxType::kFloat32 && idx.type() != data::IdxType::kFloat64) {
      (void)idx.to_int64();
    }
    samples = idx.dims()[0];
  } catch (const Error&) {
  }
  // The same bytes memory-mapped, with as many labels as the header claims samples (the data
  // behind them is at most the input's size).
  if (samples < 0 || samples > (int64_t{1} << 20)) return 0;
  const std::vector<uint8_t> labels = labels_file(samples);
  const fuzz::MemoryFile labels_memory(labels.data(), labels.size());
  try {
    data::MmapIdxDataset dataset(file.path(), labels_memory.path());
    if (dataset.size() == 0) return 0;  // [0, 2^31] is a valid header; its samples are not read
    std::vector<float> sample(static_cast<size_t>(dataset.sample_numel()));
    for (int64_t i = 0; i < dataset.size(); ++i) (void)dataset.read_into(i, sample);
  } catch (const Error&) {
  }
  return 0;
}
