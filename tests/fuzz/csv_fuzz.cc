// The CSV reader, whole (read_csv) and streamed in chunks (ChunkedCsvDataset, which seeks). The
// first byte chooses the options: bits 0-1 the delimiter, bit 2 no header, bits 3-7 the label
// column index (31: none).
#include <cstdint>
#include <vector>

#include "memory_file.h"
#include "tessera/core/error.h"
#include "tessera/data/chunked_csv_dataset.h"
#include "tessera/data/csv_reader.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr char kDelimiters[] = {',', ';', '\t', ' '};
  data::CsvOptions options;
  options.delimiter = kDelimiters[data[0] & 3];
  options.has_header = (data[0] & 4) == 0;
  if ((data[0] >> 3) != 31) options.label_index = (data[0] >> 3) - 8;
  const fuzz::MemoryFile file(data + 1, size - 1);
  try {
    (void)data::read_csv(file.path(), options);
  } catch (const Error&) {
  }
  try {
    data::ChunkedCsvDataset chunks(file.path(), options, /*chunk_rows=*/2);
    std::vector<float> sample(static_cast<size_t>(chunks.sample_numel()));
    // Backwards, so every read seeks to another chunk.
    for (int64_t i = chunks.size(); i-- > 0;) {
      (void)chunks.read_into(i, sample);
      (void)chunks.origin(i);
    }
  } catch (const Error&) {
  }
  return 0;
}
